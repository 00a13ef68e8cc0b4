"""A lifted recursion's records leaner and its sensitivity added into one buffer (issue
12). `opt/lift.lean_records`: an item a
call saves that its backward pass can make again from the same tuple's other items, the
call's parameters and constants (a product of two saved values, a number read from a
parameter at a saved index) is not saved; a tuple of a parameter and a varying value
(`(row, cols[k])`) is saved as the varying value. Checked on recursions not written for
the benchmarks (a permanent, a sum over index tuples, a recursion whose saved index pairs
both vary) against finite differences, autograd and the same gradient without the pass
(to the bit), and the memory kept. `opt/lift.accumulate_down`: the backward pass
`B(record, d, acc)` adds into the accumulator it is given (one array for the whole
recursion, not one per base case and per call on the path), also checkpointed under a
budget (`runtime.recursion_back` passes it on); the refusal where B's results have
another form (a sum of two calls), against autograd and the pass turned off."""

from __future__ import annotations

import autograd
import numpy as np
import pytest
from gradcheck import elementwise_fd
from peak_memory import peak_bytes

import tapeless as tl
from tapeless.opt import driver, lift, unwind


@pytest.fixture(autouse=True)
def records_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """These recursions' backward passes read their callees' values: fused into the
    forward pass by default (`unwind._fuse_all`, tests/test_recursion_fuse.py), with no
    records. The records tested here are the ones they keep otherwise (second order,
    under a recursion budget, or with the fusion off)."""
    monkeypatch.setattr(unwind, "FUSE_VALUES", False)


def _data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def perm_minor(A, row, cols):
    """The permanent of the rows row.. restricted to `cols`: Laplace's expansion
    without signs, its product written in another order than the determinant's."""
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    for k in range(len(cols)):
        rest = cols[:k] + cols[k + 1:]
        a = A[row, cols[k]]
        total = total + perm_minor(A, row + 1, rest) * (a * a)
    return total


def permanent(A):
    return perm_minor(A, 0, list(range(A.shape[0])))


def index_sum(A, i, order, scale):
    """A sum over index tuples (i, c), c read from a list of columns, of a recursion
    that goes down the rows, each level saving a weight `scale * A[i, c]` and the pair
    `(i, c)` (i the call's)."""
    if i == len(order):
        return 0.0
    total = 0.0
    for j in range(len(order)):
        idx = (i, order[(j * 3 + i) % len(order)])
        w = scale * A[idx]
        total = total + w * A[idx] + index_sum(A, i + 1, order, scale * 0.5) * A[idx]
    return total


def index_sum_top(A):
    return index_sum(A, 0, list(range(A.shape[0]))[::-1], 1.5)


def pair_walk(A, cols):
    """Saved index pairs whose items both vary (nothing to narrow): the right result."""
    if len(cols) < 2:
        return 0.0
    total = 0.0
    for k in range(len(cols) - 1):
        p = (cols[k], cols[k + 1])
        total = total + A[p] * pair_walk(A, cols[:k] + cols[k + 2:]) + A[p]
    return total


def pair_walk_top(A):
    return pair_walk(A, list(range(A.shape[0])))


def _off(monkeypatch) -> None:
    monkeypatch.setattr(lift, "lean_records", lambda root, pairs: 0)


# (autograd differentiates the same Python code: an independent reverse mode)
CASES = [(permanent, autograd.grad(permanent), 5),
         (index_sum_top, autograd.grad(index_sum_top), 4),
         (pair_walk_top, autograd.grad(pair_walk_top), 6)]


@pytest.mark.parametrize("fn,want,n", CASES, ids=[c[0].__name__ for c in CASES])
def test_same_gradient_as_autograd_and_without_the_pass(fn, want, n, monkeypatch) -> None:
    A = _data((n, n), seed=n)
    lean = tl.grad(fn)
    got = lean(A)
    np.testing.assert_allclose(got, want(A), rtol=1e-12, atol=1e-12)
    _off(monkeypatch)
    whole = tl.grad(fn)
    np.testing.assert_array_equal(whole(A), got)  # (the same operations: the same bits)



@pytest.mark.parametrize("fn", [permanent, index_sum_top, pair_walk_top])
def test_against_finite_differences(fn) -> None:
    A = _data((4, 4), seed=7)
    np.testing.assert_allclose(tl.grad(fn)(A), elementwise_fd(fn, A), rtol=1e-6, atol=1e-7)


def _functions(src: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for block in ("\n" + src).split("\ndef ")[1:]:
        out[block.split("(", 1)[0]] = block
    return out


@pytest.mark.parametrize("fn,name,case", [(permanent, "J_perm_minor", 0),
                                          (index_sum_top, "J_index_sum", 1)])
def test_saves_the_column_not_the_index_tuple(fn, name, case, monkeypatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    A = _data((5, 5), seed=1)
    g = tl.grad(fn)
    g(A)
    j = _functions(g.source_for(A))[name]
    # (each step saves three items: its child's value, the column, the child's record;
    # not the index tuple, whose row is the call's, read from its record, nor A[i])
    saved = next(line for line in j.splitlines() if "stack_1 = (" in line)
    assert saved.count(",") == 3, j
    assert j.rstrip().endswith("A_1, row)") or j.rstrip().endswith("A_1, i)"), j
    np.testing.assert_allclose(g(A), CASES[case][1](A), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fn,n", [(permanent, 6), (index_sum_top, 6)])
def test_lean_records_hold_less(fn, n, monkeypatch) -> None:
    A = _data((n, n), seed=3)
    small = peak_bytes(tl.grad(fn), A)
    _off(monkeypatch)
    big = peak_bytes(tl.grad(fn), A)
    assert small < 0.85 * big, (small, big)


def test_determinant_keeps_a_third_less(monkeypatch) -> None:
    from research_programs import det_laplace

    A = _data((6, 6), seed=6)
    want = np.linalg.det(A) * np.linalg.inv(A).T
    lean = tl.grad(det_laplace)
    np.testing.assert_allclose(lean(A), want, rtol=1e-9, atol=1e-12)
    small = peak_bytes(lean, A)
    _off(monkeypatch)
    whole = tl.grad(det_laplace)
    np.testing.assert_array_equal(whole(A), lean(A))
    big = peak_bytes(whole, A)
    assert small < 0.8 * big, (small, big)


def test_second_order_through_a_lean_recursion() -> None:
    A = _data((4, 4), seed=4)
    h = tl.hessian(permanent)(A)
    np.testing.assert_allclose(h, autograd.hessian(permanent)(A), rtol=1e-10, atol=1e-10)


def _no_accumulator(monkeypatch) -> None:
    monkeypatch.setattr(driver, "accumulate_down", lambda root: 0)


@pytest.fixture
def budget():
    """Set the loop settings for the next compile; restored after the test."""
    saved = tl.config.loop_checkpoint, tl.config.loop_memory

    def set_(mode: str, memory: int) -> None:
        tl.config.loop_checkpoint, tl.config.loop_memory = mode, memory

    yield set_
    tl.config.loop_checkpoint, tl.config.loop_memory = saved


@pytest.mark.parametrize("fn,want,n", CASES, ids=[c[0].__name__ for c in CASES])
@pytest.mark.parametrize("memory", [0, 2000, 1 << 30])
def test_accumulator_on_every_budget(fn, want, n, memory, budget, monkeypatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    A = _data((n, n), seed=n + 1)
    budget("auto", memory)
    g = tl.grad(fn)
    got = g(A)
    np.testing.assert_allclose(got, want(A), rtol=1e-12, atol=1e-12)
    src = g.source_for(A)
    b = _functions(src)["B_" + fn.__name__.replace("_top", "").replace(
        "permanent", "perm_minor")]
    # (pair_walk's sums are not proven owned, `gadd`: left as it is)
    threaded = fn is not pair_walk_top
    assert ("acc)" in b.splitlines()[0]) == threaded and "gadd_owned" not in b, b
    assert ("recursion_back" in src) == (memory < 1 << 30), src
    _no_accumulator(monkeypatch)
    off = tl.grad(fn)
    np.testing.assert_allclose(off(A), got, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("memory", [0, 1 << 30])
def test_accumulator_keeps_one_array(memory, budget, monkeypatch) -> None:
    from research_programs import det_laplace

    A = _data((6, 6), seed=5)
    budget("auto", memory)
    one = tl.grad(det_laplace)
    small = peak_bytes(one, A)
    _no_accumulator(monkeypatch)
    many = tl.grad(det_laplace)
    np.testing.assert_allclose(one(A), many(A), rtol=1e-13, atol=1e-13)
    big = peak_bytes(many, A)
    if memory == 0:  # (one array where there were one per level and per base case)
        assert small < 0.6 * big, (small, big)
    else:
        assert small <= big, (small, big)


def halves(x, lo, hi):
    """A binary recursion whose backward pass sums two calls' sensitivities (no loop):
    left as it is."""
    if hi - lo == 1:
        return x[lo] * x[lo]
    mid = (lo + hi) // 2
    return halves(x, lo, mid) * 1.5 + halves(x, mid, hi) * x[lo]


@pytest.mark.parametrize("memory", [0, 1 << 30])
def test_other_forms_left_as_they_are(memory, budget) -> None:
    x = _data((9,), seed=9)
    budget("auto", memory)
    g = tl.grad(lambda v: halves(v, 0, v.shape[0]))
    np.testing.assert_allclose(g(x), autograd.grad(lambda v: halves(v, 0, 9))(x),
                               rtol=1e-12, atol=1e-12)


def test_past_the_limit_tapes_share_their_region_pair() -> None:
    """`runtime.recursion_call` past its region's limit: a tape holding the arguments, the
    tapes of a region sharing their (function, limit, stream) triple; `recursion_back`
    makes a tape's record again and passes the accumulator on."""
    from tapeless import runtime as rt

    A = np.zeros(3)

    def j(A, row, cols):
        return 1.0, (False, (cols, None), A)

    def b(record, d, acc=None):
        return (record, d, acc)

    rec = rt._RECORDING
    saved = rec.count, rec.limit, rec.made
    rec.count, rec.limit, rec.made = 0, 0, None
    try:
        one, two = rt.recursion_call(j, (A, 1, [1, 2])), rt.recursion_call(j, (A, 1, [0, 2]))
        assert type(one[1]) is rt.RecursionTape and one[1].made is two[1].made
        assert one[1].made == (j, 0, None) and one[1].args == (A, 1, [1, 2])
        remade, d, acc = rt.recursion_back(b, one[1], 2.0, "acc")
        assert remade == (False, ([1, 2], None), A) and (d, acc) == (2.0, "acc")
        plain = (True, 2, A)
        assert rt.recursion_back(b, plain, 3.0) == (plain, 3.0, None)
    finally:
        rec.count, rec.limit, rec.made = saved
