"""The lifted backward pass of a linear recursion (one recursive call per level) as two
loops (`tapeless.opt.unwind`, Python backend): a descent stacking each level's record,
the base case, a climb adding each level's pieces after the levels below. Checked on
recursions not written for the benchmarks, to the bit against the same program with the
rewrite off, and against autograd or finite differences; recursions with two calls per
level, or none stacked, keep their recursive backward pass."""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from gradcheck import elementwise_fd, grads_without_step

import tapeless as tl
import tapeless.opt.unwind as unwind


def _backward(source: str, name: str) -> str:
    start = source.index(f"def {name}(")
    end = source.find("\ndef ", start + 1)
    return source[start:] if end < 0 else source[start:end]


def _grads(monkeypatch, fn, args, argnums=0, changes=True):
    """The gradient's source and value with the rewrite, and the value without it."""
    return grads_without_step(monkeypatch, "unwind_backprops", fn, args, argnums, changes)


# --- a descent reading x at each level: the sensitivity passed down changes -------------


def descend(x, lo, hi):
    if hi - lo <= 1:
        return np.sin(x[lo])
    mid = (lo + hi) // 2
    right = x[mid] > 0.0
    nlo = mid if right else lo
    nhi = hi if right else mid
    return x[mid] * descend(x, nlo, nhi) + x[mid] * x[mid]


def descent_loss(x):
    return descend(x, 0, x.shape[0])


def _anp_descend(x, lo, hi):
    if hi - lo <= 1:
        return anp.sin(x[lo])
    mid = (lo + hi) // 2
    right = x[mid] > 0.0
    nlo, nhi = (mid, hi) if right else (lo, mid)
    return x[mid] * _anp_descend(x, nlo, nhi) + x[mid] * x[mid]


@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_descent_like_binary_search(monkeypatch, n) -> None:
    x = np.random.default_rng(n).standard_normal(n)
    source, got, want = _grads(monkeypatch, descent_loss, (x,))
    for name in ("B_descend", "J_descend"):  # (the backward pass and the forward one)
        body = _backward(source, name)
        assert "while " in body and "reversed(" in body and body.count(f"{name}(") == 1, \
            body
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got, autograd.grad(lambda v: _anp_descend(v, 0, n))(x),
                               rtol=1e-13, atol=1e-14)


# --- a suffix product over a vector: the sensitivity of a dense vector at each level ----


def horner(c, x, k):
    if k == c.shape[0]:
        return 0.0 * x
    return c[k] + x * horner(c, x, k + 1)


def horner_loss(c, x):
    return np.sum(np.tanh(horner(c, x, 0)))


def test_recursive_horner_in_both_arguments(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    c, x = rng.standard_normal(6), 0.5 * rng.standard_normal(4)
    for argnums in (0, 1):
        source, got, want = _grads(monkeypatch, horner_loss, (c, x), argnums)
        assert "reversed(" in _backward(source, "B_horner"), source
        np.testing.assert_array_equal(got, want)
        f = (lambda v: horner_loss(v, x)) if argnums == 0 else (lambda v: horner_loss(c, v))
        np.testing.assert_allclose(got, elementwise_fd(f, (c, x)[argnums]), rtol=1e-7,
                                   atol=1e-8)


# --- recursions the rewrite leaves as they are ---------------------------------------


def tree_sum(x, lo, hi):
    if hi - lo == 1:
        return x[lo] * x[lo]
    mid = (lo + hi) // 2
    return tree_sum(x, lo, mid) + np.cos(tree_sum(x, mid, hi))


def tree_loss(x):
    return tree_sum(x, 0, x.shape[0])


def _anp_tree(x, lo, hi):
    if hi - lo == 1:
        return x[lo] * x[lo]
    mid = (lo + hi) // 2
    return _anp_tree(x, lo, mid) + anp.cos(_anp_tree(x, mid, hi))


def test_a_tree_of_index_ranges_keeps_its_recursive_backward_pass(monkeypatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    for n in (1, 5, 16):
        x = np.random.default_rng(n).standard_normal(n)
        g = tl.grad(tree_loss)
        if n > 1:
            assert "reversed(" not in g.source_for(x)
        np.testing.assert_allclose(g(x), autograd.grad(lambda v: _anp_tree(v, 0, n))(x),
                                   rtol=1e-13, atol=1e-14)


def test_the_walk_unwound_gives_the_same_bits_first_and_second_order(monkeypatch) -> None:
    from research_programs import walk_energy

    A = np.random.default_rng(8).standard_normal((9, 9))
    _, got, want = _grads(monkeypatch, walk_energy, (A,))
    np.testing.assert_array_equal(got, want)
    V = np.random.default_rng(9).standard_normal((9, 9))

    def vdot_grad(M):
        return np.sum(tl.grad(walk_energy)(M) * V)

    # (the second-order program keeps its closures: nothing lifted, nothing unwound)
    _, got, want = _grads(monkeypatch, vdot_grad, (A,), changes=False)
    np.testing.assert_array_equal(got, want)


def noisy(x, k):
    if k == 0:
        return x
    print("level", k)
    return np.sin(noisy(x, k - 1)) * x


def test_a_recursion_that_prints_keeps_its_forward_recursion(monkeypatch, capsys) -> None:
    x = np.linspace(0.1, 0.9, 3)
    source, got, want = _grads(monkeypatch, lambda v: np.sum(noisy(v, 4)), (x,))
    assert "reversed(" not in _backward(source, "J_noisy"), source
    printed = capsys.readouterr().out
    assert printed == 2 * "".join(f"level {k}\n" for k in (4, 3, 2, 1)), printed
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got, elementwise_fd(lambda v: np.sum(noisy(v, 4)), x),
                               rtol=1e-7, atol=1e-8)


def test_three_thousand_levels_against_the_closed_form(monkeypatch) -> None:
    """Both passes of the gradient are loops (no call of themselves): 3000 levels,
    against the closed form."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    rng = np.random.default_rng(1)
    c, x = 0.01 * rng.standard_normal(3000), 0.5 * rng.standard_normal(3)
    h = np.polyval(c[::-1], x)
    want = np.array([np.sum(x ** k / np.cosh(h) ** 2) for k in range(3000)])
    g = tl.grad(horner_loss)
    source = g.source_for(c, x)
    for name in ("J_horner", "B_horner"):
        assert _backward(source, name).count(f"{name}(") == 1, source
    np.testing.assert_allclose(g(c, x), want, rtol=1e-10, atol=1e-14)


# --- the value of a forward recursion no one reads is not computed ---------------------


def _forward(source: str, name: str) -> str:
    return _backward(source, name)


def chain(x, i):
    """A recursive sum of per-level terms: the backward pass needs none of the callee's
    values, only the record (a gradient never reads the recursion's value)."""
    if i == x.shape[0]:
        return 0.0
    return np.cos(x[i]) * x[(3 * i) % x.shape[0]] + chain(x, i + 1)


def chain_loss(x):
    return chain(x, 0)


def _anp_chain(x, i):
    if i == x.shape[0]:
        return 0.0
    return anp.cos(x[i]) * x[(3 * i) % x.shape[0]] + _anp_chain(x, i + 1)


@pytest.mark.parametrize("n", [1, 4, 50])
def test_a_sum_recursion_forward_pass_builds_the_records_only(monkeypatch, n) -> None:
    x = np.random.default_rng(n).standard_normal(n)
    # (the backward pass not fused into the forward one: `_fuse_all`, tested below)
    monkeypatch.setattr(unwind, "_fuse_all", lambda *_: 0)
    source, got, want = _grads(monkeypatch, chain_loss, (x,))
    forward = _forward(source, "J_chain")
    # (the sum is dropped: the forward pass gives None for it, and adds nothing but
    # the descent's index)
    assert "return None, " in forward and forward.count(" + ") == 1, forward
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got, autograd.grad(lambda v: _anp_chain(v, 0))(x),
                               rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(got, elementwise_fd(chain_loss, x), rtol=1e-7, atol=1e-8)


def test_the_value_asked_for_keeps_the_sum(monkeypatch) -> None:
    """`value_and_grad` reads the recursion's value: the forward pass keeps computing it."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    x = np.random.default_rng(2).standard_normal(30)
    vg = tl.value_and_grad(chain_loss)
    value, grad = vg(x)
    assert value == pytest.approx(chain_loss(x), rel=1e-14)
    np.testing.assert_allclose(grad, autograd.grad(lambda v: _anp_chain(v, 0))(x),
                               rtol=1e-13, atol=1e-14)


def damped(x, i):
    """The callee's value feeds the level's derivative (`x[i] * tanh(damped)`): the
    forward pass must keep it, though the caller reads only the record."""
    if i == x.shape[0]:
        return 1.0
    return x[i] * np.tanh(damped(x, i + 1)) + 0.5 * x[i]


def _anp_damped(x, i):
    if i == x.shape[0]:
        return 1.0
    return x[i] * anp.tanh(_anp_damped(x, i + 1)) + 0.5 * x[i]


def test_a_value_the_backward_pass_reads_is_kept(monkeypatch) -> None:
    x = np.random.default_rng(5).standard_normal(40)
    source, got, want = _grads(monkeypatch, lambda v: damped(v, 0), (x,))
    assert "return None, " not in _forward(source, "J_damped"), source
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got, autograd.grad(lambda v: _anp_damped(v, 0))(x),
                               rtol=1e-12, atol=1e-14)


def pair(x, i):
    """A recursion giving back a pair; the loss reads one item of it per level and the
    other only at the top: every item is live."""
    if i == x.shape[0]:
        return 0.0, 1.0
    s, p = pair(x, i + 1)
    return s + x[i] * x[i], p * np.cos(x[i])


def test_a_pair_valued_recursion(monkeypatch) -> None:
    x = np.random.default_rng(6).standard_normal(25)

    def loss(v):
        s, p = pair(v, 0)
        return s

    def loss2(v):
        s, p = pair(v, 0)
        return s + p

    for fn in (loss, loss2):
        _, got, want = _grads(monkeypatch, fn, (x,), changes=None)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(got, elementwise_fd(fn, x), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("fn", [chain_loss, lambda v: damped(v, 0)])
def test_python_and_native_backends_agree(monkeypatch, fn) -> None:
    pytest.importorskip("numba")
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    x = np.random.default_rng(7).standard_normal(30)
    got = tl.grad(fn)(x)
    native = tl.grad(fn, backend="native")(x)
    np.testing.assert_allclose(got, native, rtol=1e-13, atol=1e-15)


# --- a backward recursion adding two reads per level: one loop, in place ---------------


def hop(M, i, k):
    """Two reads of a matrix per level along a path that revisits entries (so several
    levels add into one element), stopping after k levels."""
    if k == 0:
        return 0.0
    n = M.shape[0]
    j = (3 * k + 1) % n
    return M[i % n, j] * M[j, i % n] + hop(M, i + 2, k - 1)


def _anp_hop(M, i, k):
    if k == 0:
        return 0.0
    n = M.shape[0]
    j = (3 * k + 1) % n
    return M[i % n, j] * M[j, i % n] + _anp_hop(M, i + 2, k - 1)


def faded(x, i):
    """The sensitivity passed down changes per level (halved): the pieces are made from
    each level's own sensitivity."""
    if i == x.shape[0]:
        return 0.0
    return x[i] * x[(i * i) % x.shape[0]] + 0.5 * faded(x, i + 1)


def _anp_faded(x, i):
    if i == x.shape[0]:
        return 0.0
    return x[i] * x[(i * i) % x.shape[0]] + 0.5 * _anp_faded(x, i + 1)


def _one_loop(source: str, name: str) -> str:
    body = _backward(source, name)
    assert "reversed(" not in body and body.count("while ") == 1, body
    assert body.count("] += ") == 2 and "scatter_add" not in body, body
    return body


@pytest.mark.parametrize("n,k", [(1, 3), (5, 1), (7, 40)])
def test_hops_revisiting_entries_add_in_place_in_one_loop(monkeypatch, n, k) -> None:
    M = np.random.default_rng(n + k).standard_normal((n, n))
    source, got, want = _grads(monkeypatch, lambda A: hop(A, 0, k), (M,))
    _one_loop(source, "B_hop_fused")
    # (the same sum up to rounding: the pieces added one by one, the top level's first)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got, autograd.grad(lambda A: _anp_hop(A, 0, k))(M),
                               rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(got, elementwise_fd(lambda A: hop(A, 0, k), M), rtol=1e-6,
                               atol=1e-8)


def test_a_sensitivity_that_changes_per_level(monkeypatch) -> None:
    x = np.random.default_rng(11).standard_normal(30)
    source, got, want = _grads(monkeypatch, lambda v: faded(v, 0), (x,))
    body = _one_loop(source, "B_faded_fused")
    assert "dout *" in body or "* dout" in body, body  # (the halved d, not 1.0)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got, autograd.grad(lambda v: _anp_faded(v, 0))(x),
                               rtol=1e-13, atol=1e-14)


def list_walk(xs, i):
    """The same two reads per level from a list of floats: no array to add into."""
    if i == len(xs):
        return 0.0
    return xs[i] * xs[(2 * i) % len(xs)] + list_walk(xs, i + 1)


def shrink(x):
    """An array that shrinks per level: x's shape differs from level to level."""
    if x.shape[0] == 1:
        return x[0] * x[0]
    return x[0] * x[-1] + shrink(x[1:])


def test_lists_and_shrinking_arrays_keep_the_helper(monkeypatch) -> None:
    xs = [0.3, -1.2, 0.7, 2.0, 0.1]
    source, got, want = _grads(monkeypatch, lambda v: list_walk(v, 0), (xs,), changes=None)
    assert "] += " not in _backward(source, "B_list_walk"), source
    assert got == want
    fd = elementwise_fd(lambda v: list_walk(list(v), 0), np.array(xs))
    np.testing.assert_allclose(np.array(got), fd, rtol=1e-6, atol=1e-8)
    x = np.random.default_rng(12).standard_normal(9)
    source, got, want = _grads(monkeypatch, shrink, (x,), changes=None)
    assert "np.zeros((9" not in source, source
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got, elementwise_fd(shrink, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("which", ["hop", "faded", "walk"])
def test_one_loop_python_and_native_agree(monkeypatch, which) -> None:
    pytest.importorskip("numba")
    from research_programs import walk_energy

    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    rng = np.random.default_rng(13)
    fn, arg = {"hop": (lambda A: hop(A, 0, 25), rng.standard_normal((6, 6))),
               "faded": (lambda v: faded(v, 0), rng.standard_normal(20)),
               "walk": (walk_energy, rng.standard_normal((12, 12)))}[which]
    np.testing.assert_allclose(tl.grad(fn)(arg), tl.grad(fn, backend="native")(arg),
                               rtol=1e-13, atol=1e-15)


def test_two_calls_of_one_recursion_with_other_sensitivities(monkeypatch) -> None:
    """Two outside calls (one scaled: its sensitivity 2.0, not 1.0) of one recursion
    whose backward pass is one loop in place: each call's sum its own array."""
    M = np.random.default_rng(14).standard_normal((6, 6))

    def two(A):
        return 2.0 * hop(A, 0, 9) + hop(A, 3, 4) * hop(A, 1, 2)

    def anp_two(A):
        return 2.0 * _anp_hop(A, 0, 9) + _anp_hop(A, 3, 4) * _anp_hop(A, 1, 2)

    source, got, want = _grads(monkeypatch, two, (M,))
    body = _one_loop(source, "B_hop_fused")
    assert "dout *" in body or "* dout" in body, body  # (not 1.0 at every call)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got, autograd.grad(anp_two)(M), rtol=1e-13, atol=1e-14)
    value, grad = tl.value_and_grad(two)(M)
    assert value == pytest.approx(two(M), rel=1e-14)
    np.testing.assert_allclose(grad, got, rtol=1e-14, atol=1e-15)


# --- the backward pass fused into the forward one: no records --------------------------


def _unfused(monkeypatch, fn, args, argnums=0):
    """The gradient with the backward recursion left reading the records."""
    with monkeypatch.context() as m:
        m.setattr(unwind, "_fuse_all", lambda *_: 0)
        return tl.grad(fn, argnums=argnums)(*args)


def _fused_only(source: str, name: str) -> str:
    """The fused function's body, where the gradient calls no forward recursion."""
    grad = source[:source.index("\ndef ", 1)]
    assert "J_" not in grad and f"{name}_fused(" in grad, source
    assert f"def J_{name[2:]}(" not in source and f"def {name}(" not in source, source
    return _one_loop(source, f"{name}_fused")


def zigzag(M, i, k):
    """A path through a matrix that revisits entries; the reads' indices depend on the
    level's parameters only, three levels' worth of parameters changing."""
    if k == 0:
        return 0.0
    n = M.shape[0]
    r = (i * i + k) % n
    return np.sin(M[r, i % n]) * M[i % n, r] + zigzag(M, i + 3, k - 1)


def _anp_zigzag(M, i, k):
    if k == 0:
        return 0.0
    n = M.shape[0]
    r = (i * i + k) % n
    return anp.sin(M[r, i % n]) * M[i % n, r] + _anp_zigzag(M, i + 3, k - 1)


@pytest.mark.parametrize("n,k", [(1, 1), (4, 0), (5, 2), (9, 60)])
def test_the_backward_pass_runs_in_the_forward_descent(monkeypatch, n, k) -> None:
    M = np.random.default_rng(20 + k).standard_normal((n, n))
    source, got, want = _grads(monkeypatch, lambda A: zigzag(A, 1, k), (M,))
    _fused_only(source, "B_zigzag")
    np.testing.assert_array_equal(got, _unfused(monkeypatch, lambda A: zigzag(A, 1, k), (M,)))
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got, autograd.grad(lambda A: _anp_zigzag(A, 1, k))(M),
                               rtol=1e-13, atol=1e-14)


def test_the_walk_fused_gives_the_hand_written_bits(monkeypatch) -> None:
    """Pieces `1.0 * y` added as y: the same sum, in the same order, as a loop writing
    `G[i, i] += A[i, j]; G[i, j] += A[i, i]` (research_programs.walk: j = 3 i mod n)."""
    from research_programs import walk_energy

    A = np.random.default_rng(21).standard_normal((30, 30))
    source, got, _ = _grads(monkeypatch, walk_energy, (A,))
    body = _fused_only(source, "B_walk")
    assert "dout" not in body.split("\n", 1)[1], body
    G = np.zeros_like(A)
    for i in range(30):
        j = (3 * i) % 30
        G[i, i] += A[i, j]
        G[i, j] += A[i, i]
    np.testing.assert_array_equal(got, G)


def test_a_sensitivity_scaled_per_level_is_carried_by_the_fused_loop(monkeypatch) -> None:
    x = np.random.default_rng(22).standard_normal(40)
    source, got, want = _grads(monkeypatch, lambda v: faded(v, 0), (x,))
    body = _fused_only(source, "B_faded")
    assert "dout * 0.5" in body or "0.5 * dout" in body, body
    np.testing.assert_array_equal(got, _unfused(monkeypatch, lambda v: faded(v, 0), (x,)))
    np.testing.assert_allclose(got, autograd.grad(lambda v: _anp_faded(v, 0))(x),
                               rtol=1e-13, atol=1e-14)


def test_value_and_grad_keeps_the_value_and_fuses_the_gradient(monkeypatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    M = np.random.default_rng(23).standard_normal((7, 7))
    vg = tl.value_and_grad(lambda A: zigzag(A, 2, 25))
    source = vg.source_for(M)
    forward = _backward(source, "J_zigzag")
    assert "None" in forward and "reversed(" in forward, source  # (the value, no record)
    _one_loop(source, "B_zigzag_fused")
    value, grad = vg(M)
    assert value == zigzag(M, 2, 25)
    np.testing.assert_array_equal(grad, tl.grad(lambda A: zigzag(A, 2, 25))(M))
    np.testing.assert_allclose(grad, autograd.grad(lambda A: _anp_zigzag(A, 2, 25))(M),
                               rtol=1e-13, atol=1e-14)


def test_one_fused_function_for_every_call_of_a_pair(monkeypatch) -> None:
    M = np.random.default_rng(24).standard_normal((6, 6))

    def three(A):
        return zigzag(A, 0, 5) * zigzag(A, 1, 3) - 3.0 * zigzag(A, 2, 4)

    def anp_three(A):
        return _anp_zigzag(A, 0, 5) * _anp_zigzag(A, 1, 3) - 3.0 * _anp_zigzag(A, 2, 4)

    source, got, want = _grads(monkeypatch, three, (M,))
    assert source.count("def B_zigzag_fused") == 1 and source.count("B_zigzag_fused(") == 4, \
        source
    np.testing.assert_array_equal(got, _unfused(monkeypatch, three, (M,)))
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(got, autograd.grad(anp_three)(M), rtol=1e-13, atol=1e-14)


def test_a_level_reading_the_callees_value_is_not_fused(monkeypatch) -> None:
    x = np.random.default_rng(25).standard_normal(12)
    for fn in (lambda v: damped(v, 0), descent_loss):
        source, got, want = _grads(monkeypatch, fn, (x,))
        assert "_fused" not in source, source
        np.testing.assert_array_equal(got, want)


def test_recursions_called_in_a_loop(monkeypatch) -> None:
    """The records saved by a loop and read back by its backward loop: not fused (the
    calls are in two functions), right."""
    M = np.random.default_rng(26).standard_normal((5, 5))

    def looped(A):
        total = 0.0
        for s in range(3):
            total = total + np.cos(zigzag(A, s, 4))
        return total

    def anp_looped(A):
        total = 0.0
        for s in range(3):
            total = total + anp.cos(_anp_zigzag(A, s, 4))
        return total

    _, got, want = _grads(monkeypatch, looped, (M,), changes=None)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(got, autograd.grad(anp_looped)(M), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("which", ["zigzag", "value_and_grad"])
def test_fused_python_and_native_agree(monkeypatch, which) -> None:
    pytest.importorskip("numba")
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    M = np.random.default_rng(27).standard_normal((8, 8))
    make = tl.grad if which == "zigzag" else tl.value_and_grad
    py = make(lambda A: zigzag(A, 1, 30))(M)
    native = make(lambda A: zigzag(A, 1, 30), backend="native")(M)
    for a, b in zip(py if isinstance(py, tuple) else (py,),
                    native if isinstance(native, tuple) else (native,), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("mode,memory", [("always", 0), ("auto", 100)])
def test_fused_under_a_memory_budget(monkeypatch, mode, memory) -> None:
    """The fused gradient keeps no records, so a budget for them changes nothing; the
    value's forward recursion (`value_and_grad`) keeps none either."""
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    monkeypatch.setattr(tl.config, "loop_checkpoint", mode)
    monkeypatch.setattr(tl.config, "loop_memory", memory)
    M = np.random.default_rng(28).standard_normal((7, 7))
    g = tl.grad(lambda A: zigzag(A, 1, 40))
    assert "B_zigzag_fused(" in g.source_for(M)
    value, grad = tl.value_and_grad(lambda A: zigzag(A, 1, 40))(M)
    np.testing.assert_array_equal(g(M), grad)
    assert value == zigzag(M, 1, 40)
    np.testing.assert_allclose(grad, autograd.grad(lambda A: _anp_zigzag(A, 1, 40))(M),
                               rtol=1e-13, atol=1e-14)


def test_calls_in_the_branches_of_an_if_are_not_fused_and_stay_right(monkeypatch) -> None:
    """The records made in the branches of an `if` and read after it: the backward pass
    is one loop (its records followed through the `if`), not fused."""
    M = np.random.default_rng(29).standard_normal((6, 6))

    def branchy(A):
        if A[0, 0] > 0.0:
            return zigzag(A, 0, 5)
        return 2.0 * zigzag(A, 1, 7)

    def anp_branchy(A):
        if A[0, 0] > 0.0:
            return _anp_zigzag(A, 0, 5)
        return 2.0 * _anp_zigzag(A, 1, 7)

    for sign in (1.0, -1.0):
        A = M.copy()
        A[0, 0] = sign * abs(A[0, 0])
        source, got, want = _grads(monkeypatch, branchy, (A,))
        assert "_fused" not in source and "] += " in _backward(source, "B_zigzag"), source
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(got, autograd.grad(anp_branchy)(A), rtol=1e-13,
                                   atol=1e-14)
