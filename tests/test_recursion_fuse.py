"""A backward recursion that reads its callee's value, fused into the forward recursion
(`opt.unwind._fuse_all` with values, Python backend): where the sensitivity a level gives
each recursive call is known before that call returns (the level affine in the callee's
value, its coefficient not made of it), one recursion `F(args, d, acc)` gives each
callee its sensitivity, takes back the callee's value (its gradient added into one
buffer), and gives back its own value: no records. Checked on recursions not written
for the benchmarks against the unfused program, autograd, finite differences and the
native backend; recursions whose coefficient reads the callee's value, or that multiply
two callees' values, are not fused and stay right."""

from __future__ import annotations

import sys
from pathlib import Path

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from gradcheck import elementwise_fd
from peak_memory import peak_bytes
from research_programs import det_laplace, det_laplace_filter

# (tanh of the callee's value: its derivative reads the value, not fused)
from test_unwind_backprops import _anp_damped, damped

import tapeless as tl
from tapeless.opt import unwind


@pytest.fixture(autouse=True)
def _optimized(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)


def _unfused(monkeypatch: pytest.MonkeyPatch, fn, args, argnums=0):
    """The gradient with the fusion of value-reading recursions off (records kept)."""
    with monkeypatch.context() as m:
        m.setattr(unwind, "FUSE_VALUES", False)
        g = tl.grad(fn, argnums=argnums)
        assert "_fused" not in g.source_for(*args)
        return g(*args)


def _fused(fn, args, argnums=0):
    g = tl.grad(fn, argnums=argnums)
    source = g.source_for(*args)
    return source, g(*args)


def _close(a, b, rtol=1e-13, atol=1e-14) -> None:
    for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,),
                    strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


# --- the determinant, both spellings --------------------------------------------------


@pytest.mark.parametrize("fn", [det_laplace, det_laplace_filter])
@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_determinant_fused_both_spellings(monkeypatch, fn, n: int) -> None:
    A = np.random.default_rng(n).normal(size=(n, n))
    source, got = _fused(fn, (A,))
    if n > 1:
        assert "_fused(" in source and "def J_" not in source, source
    _close(got, _unfused(monkeypatch, fn, (A,)))
    np.testing.assert_allclose(got, np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-9,
                               atol=1e-12)
    if n <= 4:
        np.testing.assert_allclose(got, elementwise_fd(fn, A), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("fn", [det_laplace, det_laplace_filter])
def test_value_and_grad_takes_the_value_from_the_fused_recursion(fn) -> None:
    A = np.random.default_rng(11).normal(size=(5, 5))
    vg = tl.value_and_grad(fn)
    source = vg.source_for(A)
    assert "_fused(" in source and "def J_" not in source, source
    value, grad = vg(A)
    assert value == pytest.approx(fn(A), rel=1e-13)
    _close(grad, tl.grad(fn)(A))


def test_memory_about_the_hand_written_gradient() -> None:
    sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
    try:
        from control_handwritten import det_laplace_grad as by_hand
    finally:
        sys.path.pop(0)
    A = np.random.default_rng(7).normal(size=(7, 7))
    g = tl.grad(det_laplace)
    np.testing.assert_allclose(g(A), by_hand(A), rtol=1e-11, atol=1e-12)
    assert peak_bytes(g, A) < 2 * peak_bytes(by_hand, A)


def test_second_order_of_the_determinant() -> None:
    A = np.random.default_rng(3).normal(size=(4, 4))
    V = np.random.default_rng(4).normal(size=(4, 4))

    def inner(M):
        return np.sum(tl.grad(det_laplace)(M) * V)

    got = tl.grad(inner)(A)
    np.testing.assert_allclose(got, elementwise_fd(inner, A), rtol=1e-5, atol=1e-7)
    H = tl.hessian(det_laplace_filter)(A)
    want = autograd.hessian(lambda M: _anp_det(M, 0, list(range(4))))(A)
    np.testing.assert_allclose(H, want, rtol=1e-10, atol=1e-12)


def _anp_det(A, row, cols):
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    sign = 1.0
    for k in range(len(cols)):
        total = total + sign * A[row, cols[k]] * _anp_det(A, row + 1, cols[:k] + cols[k + 1:])
        sign = -sign
    return total


def test_native_backend_agrees() -> None:
    pytest.importorskip("numba")
    A = np.random.default_rng(8).normal(size=(6, 6))
    for fn in (det_laplace, det_laplace_filter):
        _close(tl.grad(fn, backend="native")(A), tl.grad(fn)(A), rtol=1e-12, atol=1e-13)
    x = np.random.default_rng(9).normal(size=9)
    _close(tl.grad(signed_loss, backend="native")(x), tl.grad(signed_loss)(x), rtol=1e-12,
           atol=1e-13)


def test_under_a_recursion_budget_the_records_are_streamed() -> None:
    """A budget keeps the checkpointed schedule (`checkpoint.stream_recursion`)."""
    mode, memory = tl.config.loop_checkpoint, tl.config.loop_memory
    try:
        tl.config.loop_checkpoint, tl.config.loop_memory = "auto", 0
        A = np.random.default_rng(2).normal(size=(5, 5))
        g = tl.grad(det_laplace)
        assert "_fused(" not in g.source_for(A)
        np.testing.assert_allclose(g(A), np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-9)
    finally:
        tl.config.loop_checkpoint, tl.config.loop_memory = mode, memory


# --- recursions not written for the bench ---------------------------------------------


def perm_minor(A, row, cols):
    """The permanent, the coefficient a function of the entry, the minors rotated."""
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    for k in range(len(cols)):
        a = A[row, cols[k]]
        total = total + perm_minor(A, row + 1, cols[k + 1:] + cols[:k]) * (a * a - 0.5)
    return total


def permanent(A):
    return perm_minor(A, 0, list(range(A.shape[0])))


def _anp_perm(A, row, cols):
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    for k in range(len(cols)):
        a = A[row, cols[k]]
        total = total + _anp_perm(A, row + 1, cols[k + 1:] + cols[:k]) * (a * a - 0.5)
    return total


def test_permanent(monkeypatch) -> None:
    A = np.random.default_rng(21).normal(size=(5, 5))
    source, got = _fused(permanent, (A,))
    assert "_fused(" in source, source
    _close(got, _unfused(monkeypatch, permanent, (A,)))
    _close(got, autograd.grad(lambda M: _anp_perm(M, 0, list(range(5))))(A), rtol=1e-12,
           atol=1e-13)


def signed(x, i):
    """A signed linear recursion with a scalar factor, no loop."""
    if i == x.shape[0]:
        return 0.7
    return -0.5 * x[i] * signed(x, i + 1) + 0.7 * np.sin(x[i])


def signed_loss(x):
    return signed(x, 0)


def _anp_signed(x, i):
    if i == x.shape[0]:
        return 0.7
    return -0.5 * x[i] * _anp_signed(x, i + 1) + 0.7 * anp.sin(x[i])


@pytest.mark.parametrize("n", [0, 1, 5, 40])
def test_signed_linear_recursion(monkeypatch, n: int) -> None:
    x = np.random.default_rng(n).normal(size=n)
    source, got = _fused(signed_loss, (x,))
    if n:
        assert "_fused(" in source, source
    _close(got, _unfused(monkeypatch, signed_loss, (x,)))
    _close(got, autograd.grad(lambda v: _anp_signed(v, 0))(x), rtol=1e-12, atol=1e-13)
    value, grad = tl.value_and_grad(signed_loss)(x)
    assert value == pytest.approx(signed_loss(x), rel=1e-13)
    _close(grad, got)


def squared_minor(A, row, cols):
    """The coefficient of the callee's value is made of it (sub * sub): not fused."""
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    for k in range(len(cols)):
        sub = squared_minor(A, row + 1, cols[:k] + cols[k + 1:])
        total = total + A[row, cols[k]] * sub * sub
    return total


def _anp_squared(A, row, cols):
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    for k in range(len(cols)):
        sub = _anp_squared(A, row + 1, cols[:k] + cols[k + 1:])
        total = total + A[row, cols[k]] * sub * sub
    return total




def tree(x, lo, hi):
    """Two callees' values multiplied: not fused."""
    if hi - lo == 1:
        return np.sin(x[lo]) + 1.5
    mid = (lo + hi) // 2
    return tree(x, lo, mid) * tree(x, mid, hi)


def _anp_tree(x, lo, hi):
    if hi - lo == 1:
        return anp.sin(x[lo]) + 1.5
    mid = (lo + hi) // 2
    return _anp_tree(x, lo, mid) * _anp_tree(x, mid, hi)


def scaled_minor(A, row, cols):
    """The total scaled each iteration: the sensitivity of a child depends on the
    iterations after it, not known when it is called: not fused."""
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    for k in range(len(cols)):
        total = total * 0.5 + A[row, cols[k]] * scaled_minor(A, row + 1,
                                                              cols[:k] + cols[k + 1:])
    return total


def _anp_scaled(A, row, cols):
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    for k in range(len(cols)):
        total = total * 0.5 + A[row, cols[k]] * _anp_scaled(A, row + 1, cols[:k] + cols[k + 1:])
    return total


def test_not_fused_where_the_sensitivity_needs_the_callees_value(monkeypatch) -> None:
    A = np.random.default_rng(31).normal(size=(4, 4))
    x = np.random.default_rng(32).normal(size=8)
    cases = [
        (lambda M: squared_minor(M, 0, list(range(4))), A,
         autograd.grad(lambda M: _anp_squared(M, 0, list(range(4))))(A)),
        (lambda v: damped(v, 0), x, autograd.grad(lambda v: _anp_damped(v, 0))(x)),
        (lambda v: tree(v, 0, 8), x, autograd.grad(lambda v: _anp_tree(v, 0, 8))(x)),
        (lambda M: scaled_minor(M, 0, list(range(4))), A,
         autograd.grad(lambda M: _anp_scaled(M, 0, list(range(4))))(A)),
    ]
    for fn, arg, want in cases:
        source, got = _fused(fn, (arg,))
        assert "_fused(" not in source, source
        _close(got, want, rtol=1e-12, atol=1e-13)


# --- where the sensitivity given is made of the recursion's value: not fused ----------
# (the forward recursion must run whole before the backward one starts, and `F` would
# compute every level's value again: each such gradient about 1.2-1.5x the unfused one)


def signed_square(x):
    v = signed(x, 0)
    return v * v + np.sin(v)


def _anp_signed_square(x):
    v = _anp_signed(x, 0)
    return v * v + anp.sin(v)


def permanent_log(A):
    p = perm_minor(A, 0, list(range(A.shape[0])))
    return np.log(p * p + 1.0)


def _anp_permanent_log(A):
    p = _anp_perm(A, 0, list(range(A.shape[0])))
    return anp.log(p * p + 1.0)


def det_square(A):
    d = det_laplace(A)
    return d * np.cos(d)


def _anp_det_square(A):
    d = _anp_det(A, 0, list(range(A.shape[0])))
    return d * anp.cos(d)


def tanh_levels(x, i):
    """Each level reads an inner recursion's value nonlinearly: the sensitivity the inner
    backward recursion is given is made of the inner value."""
    if i == 3:
        return 0.0
    return np.tanh(signed(x, i)) * x[i] + tanh_levels(x, i + 1)


def _anp_tanh_levels(x, i):
    if i == 3:
        return 0.0
    return anp.tanh(_anp_signed(x, i)) * x[i] + _anp_tanh_levels(x, i + 1)


_NONLINEAR = [
    (signed_square, _anp_signed_square, (12,)),
    (permanent_log, _anp_permanent_log, (5, 5)),
    (det_square, _anp_det_square, (5, 5)),
    (lambda x: tanh_levels(x, 0), lambda x: _anp_tanh_levels(x, 0), (9,)),
]


@pytest.mark.parametrize("case", range(len(_NONLINEAR)))
def test_sensitivity_made_of_the_value_not_fused(monkeypatch, case: int) -> None:
    fn, anp_fn, shape = _NONLINEAR[case]
    x = np.random.default_rng(40 + case).normal(size=shape) * 0.6
    source, got = _fused(fn, (x,))
    assert "_fused(" not in source, source
    with monkeypatch.context() as m:  # (the same code as with the fusion off)
        m.setattr(unwind, "FUSE_VALUES", False)
        assert tl.grad(fn).source_for(x) == source
    want = autograd.grad(anp_fn)(x)
    _close(got, want, rtol=1e-11, atol=1e-13)
    value, grad = tl.value_and_grad(fn)(x)
    assert value == pytest.approx(anp_fn(x), rel=1e-13)
    _close(grad, want, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("case", range(len(_NONLINEAR)))
def test_sensitivity_made_of_the_value_optimizer_on_and_off(optimize, case: int) -> None:
    fn, anp_fn, shape = _NONLINEAR[case]
    x = np.random.default_rng(50 + case).normal(size=shape) * 0.6
    _close(tl.grad(fn)(x), autograd.grad(anp_fn)(x), rtol=1e-11, atol=1e-13)
    if len(shape) == 1:
        np.testing.assert_allclose(tl.grad(fn)(x), elementwise_fd(fn, x), rtol=1e-6,
                                   atol=1e-8)


def test_a_linear_caller_still_fused(monkeypatch) -> None:
    """The sensitivity not made of the value (a constant times it, the value read
    besides): fused, the value read from `F`."""

    def loss(x):
        v = signed(x, 0)
        return 3.0 * v + np.sum(np.sin(x)) + v

    x = np.random.default_rng(60).normal(size=10)
    source, got = _fused(loss, (x,))
    assert "_fused(" in source and "def J_" not in source, source
    want = autograd.grad(lambda v: 4.0 * _anp_signed(v, 0) + anp.sum(anp.sin(v)))(x)
    _close(got, want, rtol=1e-12, atol=1e-13)
    _close(got, _unfused(monkeypatch, loss, (x,)))


def walk_path(A, i):
    """A level reading nothing of its callee's value."""
    n = A.shape[0]
    if i == n:
        return 0.0
    return A[i, i] * A[i, (3 * i + 1) % n] + walk_path(A, i + 1)


def test_a_level_not_reading_the_callee_stays_fused_under_a_nonlinear_caller() -> None:
    """`F` computes no value there (only what the level reads of its record): `J` runs
    for the value alone, records none."""

    def loss(A):
        w = walk_path(A, 0)
        return w * w + np.cos(w)

    def anp_walk(A, i):
        n = A.shape[0]
        return 0.0 if i == n else A[i, i] * A[i, (3 * i + 1) % n] + anp_walk(A, i + 1)

    A = np.random.default_rng(61).normal(size=(7, 7))
    source, got = _fused(loss, (A,))
    assert "_fused(" in source, source
    _close(got, autograd.grad(lambda M: (w := anp_walk(M, 0)) * w + anp.cos(w))(A),
           rtol=1e-12, atol=1e-13)


def test_sensitivity_made_of_the_value_runs_natively() -> None:
    """Natively too the pair keeps its records there (`fuse_native`'s dry run skips the
    site), which Numba compiles: the fused form with `J` called for the value alone did
    not type (its dropped record) and fell back to the Python backend."""
    pytest.importorskip("numba")
    A = np.random.default_rng(70).normal(size=(5, 5)) * 0.6
    for fn, anp_fn in ((det_square, _anp_det_square), (permanent_log, _anp_permanent_log)):
        g = tl.grad(fn, backend="native")
        got = g(A)
        entry = g._get(g.bind((A,), {})).fn
        assert entry.fallback is None, entry.fallback
        _close(got, autograd.grad(anp_fn)(A), rtol=1e-11, atol=1e-13)


# --- value_and_grad of a level reading nothing of its callee ---------------------------


def two_reads(A, i):
    """Two entries per level, a third index moving with the row."""
    n = A.shape[0]
    if i == n:
        return 0.25
    return A[i, (5 * i + 2) % n] * np.cos(A[i, i]) + two_reads(A, i + 1)


def _anp_two_reads(A, i):
    n = A.shape[0]
    if i == n:
        return 0.25
    return A[i, (5 * i + 2) % n] * anp.cos(A[i, i]) + _anp_two_reads(A, i + 1)


@pytest.mark.parametrize("n", [1, 3, 9, 40])
def test_value_and_grad_of_a_sum_recursion(optimize, n: int) -> None:
    """The value as the objective computes it, the gradient as `grad`'s, to the bit."""
    A = np.random.default_rng(80 + n).normal(size=(n, n))
    fn = lambda M: two_reads(M, 0)  # noqa: E731
    value, grad = tl.value_and_grad(fn)(A)
    assert value == tl.jit(fn)(A)
    np.testing.assert_array_equal(grad, tl.grad(fn)(A))
    _close(grad, autograd.grad(lambda M: _anp_two_reads(M, 0))(A), rtol=1e-12, atol=1e-13)
    if n <= 3:
        np.testing.assert_allclose(grad, elementwise_fd(fn, A), rtol=1e-6, atol=1e-8)

# --- the native backend: a conditional expression's backpropagator kept as a closure ------


def alt_minor(A, row, cols):
    """A Laplace-like expansion spelled with a filter and a conditional expression on
    the column (not the position), its coefficient a function of the entry."""
    if len(cols) == 1:
        return np.cos(A[row, cols[0]])
    total = 0.0
    for c in cols:
        rest = [d for d in cols if d != c]
        term = (A[row, c] * A[row, c] - 0.3) * alt_minor(A, row + 1, rest)
        total = total + term if c % 2 == 1 else total - term
    return total


def _anp_alt(A, row, cols):
    if len(cols) == 1:
        return anp.cos(A[row, cols[0]])
    total = 0.0
    for c in cols:
        rest = [d for d in cols if d != c]
        term = (A[row, c] * A[row, c] - 0.3) * _anp_alt(A, row + 1, rest)
        total = total + term if c % 2 == 1 else total - term
    return total


def index_walk(x, idx):
    """A recursion over a list of indices of a vector: each level drops one index."""
    if len(idx) == 1:
        return np.cos(x[idx[0]])
    total = 0.0
    for k, i in enumerate(idx):
        rest = [j for j in idx if j != i]
        v = np.sin(x[i]) * index_walk(x, rest)
        total = total - v if i > k else total + v
    return total


def _anp_walk(x, idx):
    if len(idx) == 1:
        return anp.cos(x[idx[0]])
    total = 0.0
    for k, i in enumerate(idx):
        rest = [j for j in idx if j != i]
        v = anp.sin(x[i]) * _anp_walk(x, rest)
        total = total - v if i > k else total + v
    return total


def doubled_minor(A, row, cols):
    """One branch of the conditional expression scales the term: its backpropagator
    gives 2 d, which the level cannot give without the record: not fused, still right."""
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    for k, c in enumerate(cols):
        rest = [d for d in cols if d != c]
        term = A[row, c] * doubled_minor(A, row + 1, rest)
        total = total + 2.0 * term if k % 2 == 0 else total - term
    return total


def _anp_doubled(A, row, cols):
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    for k, c in enumerate(cols):
        rest = [d for d in cols if d != c]
        term = A[row, c] * _anp_doubled(A, row + 1, rest)
        total = total + 2.0 * term if k % 2 == 0 else total - term
    return total


def _native_source(g, *args) -> str:
    from tapeless.backend import native

    compiled = g._get(g.bind(args, {}))
    assert isinstance(compiled.fn, native.NativeFunction) and compiled.fn.fallback is None, \
        compiled.fn.fallback
    return native.native_source(compiled)


_NATIVE_CASES = [
    (det_laplace_filter, (6, 6), lambda M: np.linalg.det(M) * np.linalg.inv(M).T),
    (lambda M: alt_minor(M, 0, list(range(M.shape[0]))), (5, 5),
     autograd.grad(lambda M: _anp_alt(M, 0, list(range(M.shape[0]))))),
    (lambda v: index_walk(v, list(range(v.shape[0]))), (5,),
     autograd.grad(lambda v: _anp_walk(v, list(range(v.shape[0]))))),
]


@pytest.mark.parametrize("case", range(len(_NATIVE_CASES)))
def test_native_fuses_the_filter_spelling(monkeypatch, case: int) -> None:
    """The conditional expression's backpropagator, which the native backend keeps as a
    closure (not a record), gives its d (or -d) back: the pair fuses natively, no record
    (`unwind._closure_passed_on`, `_record_item`), equal to the Python backend and to
    the unfused native gradient."""
    pytest.importorskip("numba")
    fn, shape, want = _NATIVE_CASES[case]
    A = np.random.default_rng(40 + case).normal(size=shape)
    g = tl.grad(fn, backend="native")
    source = _native_source(g, A)
    assert "_fused(" in source and "def J_" not in source and "_nt_records" not in source, \
        source
    got = g(A)
    _close(got, tl.grad(fn)(A), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got, want(A), rtol=1e-10, atol=1e-12)
    if A.size <= 25:
        np.testing.assert_allclose(got, elementwise_fd(fn, A), rtol=1e-6, atol=1e-8)
    with monkeypatch.context() as m:
        m.setattr(unwind, "FUSE_VALUES", False)
        unfused = tl.grad(fn, backend="native")
        assert "_fused(" not in _native_source(unfused, A)
        _close(got, unfused(A), rtol=1e-12, atol=1e-13)
    value, grad = tl.value_and_grad(fn, backend="native")(A)
    assert value == pytest.approx(fn(A), rel=1e-12)
    _close(grad, got, rtol=1e-12, atol=1e-13)


def test_native_not_fused_where_a_branch_scales_its_d() -> None:
    pytest.importorskip("numba")
    A = np.random.default_rng(47).normal(size=(5, 5))

    def fn(M):
        return doubled_minor(M, 0, list(range(5)))

    g = tl.grad(fn, backend="native")
    assert "_fused(" not in _native_source(g, A)
    want = autograd.grad(lambda M: _anp_doubled(M, 0, list(range(5))))(A)
    _close(g(A), want, rtol=1e-12, atol=1e-13)
    _close(g(A), tl.grad(fn)(A), rtol=1e-12, atol=1e-13)
