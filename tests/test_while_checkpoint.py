"""Checkpointed `while` loops (`tapeless.opt.checkpoint`, `runtime.checkpoint_while_loop`):
a gradient's `while` loop, its trip count known only once it stops, that would save more
than `tl.config.loop_memory` bytes keeps snapshots of its state at a stride that doubles
instead, and its backward loop makes the saved values again from them. The gradients must
be exactly those of the loop that saves everything; the memory must not grow like n."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from peak_memory import peak_bytes
from test_loop_checkpoint import _with, loops  # noqa: F401 - (a fixture)

import tapeless as tl
from tapeless import runtime

# (The loop settings restored after each test.)
pytestmark = pytest.mark.usefixtures("loops")


def euler(A, y0, T):
    """y' = A y integrated by Euler steps until t >= T (the trip count: T / h)."""
    h = 0.01
    t = 0.0
    y = y0
    while t < T:
        y = y + h * np.tanh(A @ y)
        t = t + h
    return np.sum(y * y)


def particle(v, w):
    """A particle thrown up at speed v[1] until it hits the ground (drag w), the trip
    count depending on the arguments; scalar and array state."""
    p = np.array([0.0, 0.0])
    vel = v
    n = 0
    while p[1] >= 0.0 and n < 100000:
        acc = np.array([0.0, -9.8]) - w * vel * np.sqrt(vel @ vel)
        vel = vel + 0.01 * acc
        p = p + 0.01 * vel
        n = n + 1
    return p[0] * p[0] + np.sum(vel) + n


def breaking(w, x):
    """A `while True` loop left by `break`, reading a parameter each iteration."""
    k = 0
    while True:
        x = np.sin(w * x) + 0.5 * x
        k = k + 1
        if np.sum(x * x) > 40.0 or k >= 300:
            break
        x = x * 1.1
    return np.sum(x) * k


def inner_while(w, x):
    """A `while` loop inside a `for` loop inside a `while` loop."""
    s = 0.0
    j = 0
    while j < 6:
        for i in range(3):
            r = 1.0
            while r < 3.0 + i:
                x = np.tanh(w * x) + 0.1 * r
                r = r + 0.5
        s = s + np.sum(x)
        j = j + 1
    return s


def _euler_args(T):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(5, 5)) / 3, rng.normal(size=5), T)


def _particle_args(vy):
    return (np.array([1.5, vy]), 0.02)


def _breaking_args(scale):
    rng = np.random.default_rng(1)
    return (rng.normal(size=4), scale * rng.normal(size=4))


def _inner_args(_):
    rng = np.random.default_rng(2)
    return (rng.normal(size=4), rng.normal(size=4))


# (trip counts: Euler T = 0 (none), 0.005 (one), 0.64 (64), 1.3 (130); the particle thrown
# down (one step), up slowly, up fast; `breaking` leaving at the first test or later.)
CASES = [(euler, _euler_args, a) for a in (0.0, 0.005, 0.64, 1.3)] + \
    [(particle, _particle_args, a) for a in (-1.0, 0.5, 8.0)] + \
    [(breaking, _breaking_args, a) for a in (100.0, 0.1)] + [(inner_while, _inner_args, 0)]


def _grads(fn, args, mode, memory=1 << 30):
    _with(mode, memory)
    g = tl.grad(fn, argnums=(0, 1))
    return g, g(*args)


@pytest.mark.parametrize("fn, make, a", CASES)
@pytest.mark.parametrize("memory", [0, 300, 5000])
def test_same_gradient_as_saving_everything(fn, make, a, memory) -> None:
    args = make(a)
    plain, expected = _grads(fn, args, "never")
    assert "checkpoint_while_loop" not in plain.source_for(*args)
    checkpointed, got = _grads(fn, args, "always", memory)
    assert "checkpoint_while_loop" in checkpointed.source_for(*args)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=0)


def test_trip_counts_are_what_the_cases_say() -> None:
    # (So the cases above cover none, one and many trips, and snapshots thinned.)
    def trips(T):
        n, t = 0, 0.0
        while t < T:
            t, n = t + 0.01, n + 1
        return n

    assert [trips(T) for T in (0.0, 0.005, 0.64, 1.3)] == [0, 1, 64, 130]


def test_gradient_against_finite_differences() -> None:
    A, y0, T = _euler_args(0.5)
    _with("always", 200)
    g = tl.grad(euler, argnums=1)(A, y0, T)
    eps = 1e-6
    fd = [(euler(A, y0 + eps * e, T) - euler(A, y0 - eps * e, T)) / (2 * eps)
          for e in np.eye(5)]
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def test_snapshots_thin_out_as_the_loop_runs() -> None:
    def cond(x, n, stack):
        return n < 1000

    def body(x, n, stack):
        return x * 1.001, n + 1, (x, stack)

    _, _, tape = runtime.checkpoint_while_loop(cond, body, 2, 64, (1.0, 0, None))
    assert isinstance(tape, runtime.WhileTape) and tape.count == 1000
    assert len(tape.snapshots) <= runtime.WHILE_SNAPSHOTS
    assert tape.snapshots[1][1] == tape.stride and tape.stride * len(tape.snapshots) >= 1000


def test_vjp_called_twice() -> None:
    # (The tape is read, not consumed: a backpropagator may be called again.)
    A, y0, T = _euler_args(0.9)
    _with("never")
    value, back = tl.vjp(lambda y: euler(A, y, T), y0)
    expected = back(1.0)
    _with("always", 100)
    value2, back2 = tl.vjp(lambda y: euler(A, y, T), y0)
    assert value2 == value
    for _ in range(2):
        np.testing.assert_allclose(back2(1.0)[0], expected[0], rtol=1e-12, atol=0)


def hvp_of(fn, args, v):
    def directional(x):
        return np.dot(tl.grad(fn, argnums=1)(args[0], x, *args[2:]), v)

    return directional


@pytest.mark.parametrize("fn, make, a", [(euler, _euler_args, 0.3),
                                         (breaking, _breaking_args, 0.1)])
def test_second_order_through_a_checkpointed_while(fn, make, a) -> None:
    args = make(a)
    v = np.linspace(-1.0, 1.0, args[1].size)
    _with("never")
    expected = tl.grad(hvp_of(fn, args, v))(args[1])
    _with("always", 200)
    g = tl.grad(hvp_of(fn, args, v))
    np.testing.assert_allclose(g(args[1]), expected, rtol=1e-12, atol=1e-14)


def particle_height(v0, g):
    y, vy, t = 0.0, v0, 0.0
    while y >= 0.0:
        vy = vy - 0.01 * g
        y = y + 0.01 * vy
        t = t + 0.01
    return y * t + vy * vy


def test_nested_derivative_inside_the_while() -> None:
    # A derivative taken in each iteration (the particle aimed by descent steps).
    def aimed(v0, g):
        k = 0
        while k < 20:
            v0 = v0 - 0.001 * tl.grad(particle_height)(v0, g)
            k = k + 1
        return v0 * g

    _, expected = _grads(aimed, (3.0, 9.8), "never")
    checkpointed, got = _grads(aimed, (3.0, 9.8), "always", 0)
    assert "checkpoint_while_loop" in checkpointed.source_for(3.0, 9.8)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_memory_does_not_grow_like_n() -> None:
    rng = np.random.default_rng(3)
    A, y0 = rng.normal(size=(16, 16)) / 4, rng.normal(size=16)
    _with("always", 20_000)
    g = tl.grad(euler)
    small, large = peak_bytes(g, A, y0, 2.56), peak_bytes(g, A, y0, 40.96)
    _with("never")
    g_plain = tl.grad(euler)
    plain_small, plain_large = peak_bytes(g_plain, A, y0, 2.56), peak_bytes(g_plain, A, y0, 40.96)
    # Saving everything: 16 times the iterations, about 16 times the memory.
    assert plain_large > 10 * plain_small
    # Checkpointed: the budget, the snapshots (at most WHILE_SNAPSHOTS) and one per
    # halving of a stride.
    assert large < small + 12_000
    assert large < plain_large / 8
    np.testing.assert_allclose(g(A, y0, 40.96), g_plain(A, y0, 40.96), rtol=1e-12)


def test_auto_rule() -> None:
    A, y0, T = _euler_args(0.3)
    # An iteration saving arrays: 2^20 of them would pass a 10 kB budget.
    _with("auto", 10_000)
    assert "checkpoint_while_loop" in tl.grad(euler).source_for(A, y0, T)
    # Under the default budget (1 GiB), a million 5-vector iterations fit.
    _with("auto", 1 << 30)
    assert "checkpoint_while_loop" not in tl.grad(euler).source_for(A, y0, T)
    # At run time, a loop that stops before its saved values reach the budget keeps
    # them (no snapshot is taken): the same gradient either way.
    _with("auto", 10_000)
    short = tl.grad(euler)
    _with("never")
    np.testing.assert_array_equal(short(A, y0, 0.05), tl.grad(euler)(A, y0, 0.05))


def printing(w, T):
    t, x = 0.0, w
    while t < T:
        print(t)
        x = np.tanh(x)
        t = t + 1.0
    return x


def test_while_loops_with_effects_are_not_checkpointed(capsys) -> None:
    _with("always", 0)
    g = tl.grad(printing)
    g(0.3, 3.0)
    assert capsys.readouterr().out.split() == ["0.0", "1.0", "2.0"]
    assert "checkpoint_while_loop" not in g.source_for(0.3, 3.0)


# --- the native backend (`backend/native_checkpoint.py`) --------------------------------


@pytest.fixture
def native_settings(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    pytest.importorskip("numba")
    monkeypatch.setenv("TAPELESS_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("TAPELESS_NATIVE_SPEED_CHECK", "0")
    yield


def _is_native(transformed, *args) -> bool:
    entry = transformed._get(transformed.bind(args, {})).fn
    return bool(getattr(entry, "is_native", False))


@pytest.mark.parametrize("fn, make, values", [
    (euler, _euler_args, (0.0, 0.005, 0.64, 1.3)),
    # (state whose types change after the start: `i` and `r`, None before the loop)
    (inner_while, _inner_args, (0,))])
@pytest.mark.parametrize("memory", [0, 300, 1 << 30])
def test_native_same_gradient(fn, make, values, memory, native_settings) -> None:
    """Every schedule: a segment of one iteration (snapshots thinned many times), a few,
    and all of them (saved as without checkpointing); none, one and many trips."""
    from tapeless.backend import native

    _with("always", memory)
    compiled = tl.grad(fn, argnums=(0, 1), backend="native")
    for a in values:
        args = make(a)
        _, expected = _grads(fn, args, "never")
        _with("always", memory)
        got = compiled(*args)
        assert _is_native(compiled, *args)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12 * np.max(np.abs(e)))
    source = native.native_source(compiled._get(compiled.bind(make(values[-1]), {})))
    assert "checkpoint_while" not in source and "_nt_ck1_parts" in source


def test_native_memory_does_not_grow_like_n(native_settings) -> None:
    rng = np.random.default_rng(3)
    A, y0 = rng.normal(size=(16, 16)) / 4, rng.normal(size=16)
    _with("always", 20_000)
    g = tl.grad(euler, backend="native")
    small, large = peak_bytes(g, A, y0, 2.56), peak_bytes(g, A, y0, 40.96)
    assert _is_native(g, A, y0, 2.56)
    _with("never")
    g_plain = tl.grad(euler, backend="native")
    plain_large = peak_bytes(g_plain, A, y0, 40.96)
    assert large < small + 12_000
    assert large < plain_large / 8


def test_native_vjp_called_twice(native_settings) -> None:
    A, y0, T = _euler_args(0.9)
    _with("always", 100)
    _, back = tl.vjp(lambda y: euler(A, y, T), y0)
    _, native_back = tl.vjp(lambda y: euler(A, y, T), y0, backend="native")
    for seed in (1.0, -0.5):
        np.testing.assert_allclose(native_back(seed)[0], back(seed)[0], rtol=1e-12)


_WHILE_PAIR = """\
def f(x, T):
    def B_body(stack, d_x, *, x=x):
        rest = stack[1]
        return rest, d_x * stack[0] + 0.001
    def J_body(y, t, stack_1, *, x=x):
        y = y * x + 0.01
        stack_1 = y, stack_1
        return y, t + 1.0, stack_1
    def J_cond(y_1, t_1, stack_4, *, T=T):
        return t_1 < T
    r = _rt.checkpoint_while_loop(J_cond, J_body, 2, BUDGET, (x, 0.0, None))
    stack_2 = r[2]
    b = _rt.checkpoint_while(B_cond, B_body, 0, (stack_2, 1.0))
    return b[1] + r[0]

def B_cond(stack_3, _1):
    return stack_3 is not None
"""


@pytest.mark.parametrize("budget", [0, 100, 1000, 1 << 30])
def test_the_lowered_while_pair_runs_as_the_runtime_does(budget) -> None:
    """The native lowering's loops (`native_checkpoint.lower_while`), run by CPython
    (the runtime's helpers standing in for the overloads), against the runtime's
    `checkpoint_while_loop`: the same values for every trip count and budget."""
    import ast

    native = pytest.importorskip("tapeless.backend.native")
    source = _WHILE_PAIR.replace("BUDGET", str(budget))
    tree, _ = native.lower_source(source)
    text = ast.unparse(tree)
    assert "checkpoint" not in text.replace("_nt_ck", "")
    assert "def _nt_ck1_test(y_1, t_1, _nt_captures)" in text
    namespace: dict = {"_rt": runtime, "np": np,
                       "_nt_saved_bytes": lambda v, d: runtime.saved_bytes(v, d)}
    exec(compile(ast.fix_missing_locations(tree), "<lowered>", "exec"), namespace)  # noqa: S102
    reference: dict = {"_rt": runtime}
    exec(source, reference)  # noqa: S102
    for T in (0.0, 1.0, 2.0, 5.0, 40.0, 333.0):
        assert namespace["f"](1.001, T) == reference["f"](1.001, T)
