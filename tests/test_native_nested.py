"""Nested derivatives on the native backend (issue 15): a `while` loop differentiated by
`tl.grad` inside a `for` loop. The inner derivative's stack lives inside the outer loop, so
it is a linked stack (`backend/native_loops.py` lowers it to a list). Two forms that kept
such programs on the Python backend: the backward loop popping the stack under the name
the forward loop pushed it by (the derivative inlined next to its loop), and a stack whose
items no one reads (`()` pushed for the count of turns). Results: the Python backend's
(1e-12), gradients also against finite differences."""

from __future__ import annotations

import math
import textwrap
from typing import Any

import pytest

pytest.importorskip("numba")

from test_corpus import assert_same  # noqa: E402
from test_native_intlists import _entry, _own_cache  # noqa: E402, F401

import tapeless as tl  # noqa: E402
from tapeless.backend import native_loops  # noqa: E402


@pytest.fixture(autouse=True)
def _plain_optimizer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)


# --- programs not written for the bench's particle -------------------------------------------


def fall(h, k):
    """Time for a body dropped from height h to reach the ground (linear drag k), the
    last step interpolated: a `while` loop whose state is floats."""
    y, u, t = h, 0.0, 0.0
    py, pt = y, t
    while y > 0.0:
        py, pt = y, t
        u = u + (9.81 - k * u) * 0.02
        y = y - u * 0.02
        t = t + 0.02
    return pt + (t - pt) * py / (py - y)


def fall_gap(k, h, goal):
    return (fall(h, k) - goal) ** 2


def toss(h, u0):
    """`fall` thrown down at speed u0 (drag fixed): u0 enters only where the loop starts,
    so the loop's derivative reads none of its saved values (only their count)."""
    y, u, t = h, u0, 0.0
    py, pt = y, t
    while y > 0.0:
        py, pt = y, t
        u = u + (9.81 - 0.3 * u) * 0.02
        y = y - u * 0.02
        t = t + 0.02
    return pt + (t - pt) * py / (py - y)


def tuned_toss(h, goal):
    """Six descent steps on the initial speed so that the fall takes `goal`."""
    u0 = 1.0
    for _ in range(6):
        u0 = u0 - 0.5 * tl.grad(lambda w: (toss(h, w) - goal) ** 2)(u0)
    return toss(h, u0) + 0.1 * h * u0


def tuned_toss_args(h, goal):
    """`tuned_toss` by argnums, two descent loops one after the other."""
    u0 = 1.0
    for _ in range(3):
        u0 = u0 - 0.5 * tl.grad(toss_gap)(u0, h, goal)
    for _ in range(3):
        u0 = u0 - 0.25 * tl.grad(toss_gap)(u0, h, goal)
    return toss(h, u0) * u0


def toss_gap(u0, h, goal):
    return (toss(h, u0) - goal) ** 2


def tuned_drag(h, goal):
    """Five descent steps on the drag k so that the fall takes `goal` (each differentiates
    the `while` loop), then the fall's time at that drag."""
    k = 0.3
    for _ in range(5):
        k = k - 0.05 * tl.grad(fall_gap)(k, h, goal)
    return fall(h, k) + 0.1 * h


def spiral(r, w):
    """A `while` loop reading its saved values nonlinearly (sin, a product of state)."""
    a, s, n = 0.0, 0.0, 0
    while a < 4.0:
        s = s + r * math.sin(a) * (1.0 + 0.1 * s)
        a = a + w
        n = n + 1
    return s


def spiral_fit(r, goal):
    w = 0.3
    for _ in range(4):
        w = w - 0.001 * tl.grad(lambda ww: (spiral(r, ww) - goal) ** 2)(w)
    return spiral(r, w) * r


def spiral_closure(r, goal):
    """A closure over outer values (r, goal and `scale`, made before the loop)."""
    w = 0.3
    scale = 1.0 + r * r
    for _ in range(3):
        w = w - 0.001 * tl.grad(lambda ww: scale * (spiral(r, ww) - goal) ** 2)(w)
    return spiral(r, w) + scale * r


def drop_state(h, k):
    """`fall`, with its state a tuple advanced by a step function."""
    state = (h, 0.0, 0.0)
    prev = state
    while state[0] > 0.0:
        prev = state
        y, u, t = state
        u = u + (9.81 - k * u) * 0.02
        state = (y - u * 0.02, u, t + 0.02)
    return prev[2] + (state[2] - prev[2]) * prev[0] / (prev[0] - state[0])


def tuned_drag_state(h, goal):
    k = 0.3
    for _ in range(5):
        k = k - 0.05 * tl.grad(lambda kk: (drop_state(h, kk) - goal) ** 2)(k)
    return drop_state(h, k) + 0.1 * h


def toss_state(h, u0):
    """`toss` with its state a tuple advanced by a step function."""
    state = (h, u0, 0.0)
    prev = state
    while state[0] > 0.0:
        prev = state
        y, u, t = state
        u = u + (9.81 - 0.3 * u) * 0.02
        state = (y - u * 0.02, u, t + 0.02)
    return prev[2] + (state[2] - prev[2]) * prev[0] / (prev[0] - state[0])


def tuned_toss_state(h, goal):
    u0 = 1.0
    for _ in range(6):
        u0 = u0 - 0.5 * tl.grad(lambda w: (toss_state(h, w) - goal) ** 2)(u0)
    return toss_state(h, u0) + 0.1 * h * u0


def _run_natively(transformed: Any, args: tuple) -> Any:
    """The native code's own result (not the entry's, which answers from the Python
    backend where native code raises)."""
    entry = _entry(transformed, *args)
    assert entry.is_native, entry.fallback
    assert entry.native is not None
    out = entry.native(*args)
    if entry.paths is not None:
        out, path = out
        return entry.path_types[path](out)
    return entry.types(out) if entry.types is not None else out


def flight(v, angle):
    """A particle's landing point (the bench's particle, written again here)."""
    x, y = 0.0, 0.0
    vx, vy = v * math.cos(angle), v * math.sin(angle)
    px, py = x, y
    while y >= 0.0:
        px, py = x, y
        x = x + vx * 0.01
        y = y + vy * 0.01
        vx = vx - 0.1 * vx * 0.01
        vy = vy - (9.81 + 0.1 * vy) * 0.01
    return px + (x - px) * py / (py - y)


def flight_miss(angle, v, target):
    return (flight(v, angle) - target) ** 2


def aimed(v, target):
    angle = 0.6
    for _ in range(8):
        angle = angle - 0.002 * tl.grad(flight_miss)(angle, v, target)
    return flight(v, angle) + 0.01 * v * v


def central(f: Any, args: tuple, i: int, eps: float = 1e-6) -> float:
    up = list(args)
    down = list(args)
    up[i] += eps
    down[i] -= eps
    return (f(*up) - f(*down)) / (2 * eps)


NATIVE = [
    pytest.param(tuned_toss, (20.0, 1.6), 0, id="lambda-closure"),
    pytest.param(tuned_toss, (20.0, 1.6), 1, id="lambda-closure-argnum1"),
    pytest.param(tuned_toss_args, (20.0, 1.6), 0, id="argnums-two-loops"),
    pytest.param(tuned_toss_state, (20.0, 1.6), 0, id="tuple-state-lambda"),
    pytest.param(tuned_toss_state, (20.0, 1.6), 1, id="tuple-state-lambda-argnum1"),
    pytest.param(aimed, (12.0, 9.0), 0, id="particle-floats"),
]


@pytest.mark.parametrize(("fn", "args", "argnum"), NATIVE)
def test_nested_derivative_native(fn: Any, args: tuple, argnum: int) -> None:
    """The objective and its gradient both native (the loop's derivative reads only the
    count of its saved values: the gradient's second-order loops are float loops)."""
    f_py, f_nat = tl.jit(fn), tl.jit(fn, backend="native")
    g_py = tl.value_and_grad(fn, argnum)
    g_nat = tl.value_and_grad(fn, argnum, backend="native")
    assert_same(f_py(*args), f_nat(*args))
    assert_same(g_py(*args), g_nat(*args))
    assert_same(f_py(*args), _run_natively(f_nat, args))
    assert_same(g_py(*args), _run_natively(g_nat, args))
    value, slope = g_nat(*args)
    assert value == pytest.approx(fn(*args), rel=1e-12)
    assert slope == pytest.approx(central(fn, args, argnum), rel=1e-5, abs=1e-8)
    # (a second call: the lists the stacks live in start empty again)
    assert_same(g_py(*args), g_nat(*args))


OBJECTIVE_NATIVE = [
    pytest.param(tuned_drag, (20.0, 2.2), id="while-in-grad-in-for"),
    pytest.param(spiral_fit, (0.7, 1.5), id="read-items-lambda"),
    pytest.param(spiral_closure, (0.7, 1.5), id="closure-over-outer"),
    pytest.param(tuned_drag_state, (20.0, 2.2), id="tuple-state"),
]


@pytest.mark.parametrize(("fn", "args"), OBJECTIVE_NATIVE)
def test_nested_objective_native(fn: Any, args: tuple) -> None:
    """Loops whose derivative reads their saved values: the objective (a first-order
    derivative inside a loop) native; the gradient, native or not, the Python backend's.
    (Its second order differentiates the reads of a linked stack, whose sensitivity is a
    linked tuple, `tuple_sens`: that gradient still falls back.)"""
    f_nat = tl.jit(fn, backend="native")
    assert_same(tl.jit(fn)(*args), f_nat(*args))
    assert_same(tl.jit(fn)(*args), _run_natively(f_nat, args))
    for i in range(len(args)):
        expected = tl.value_and_grad(fn, i)(*args)
        got = tl.value_and_grad(fn, i, backend="native")(*args)
        assert_same(expected, got)
        assert got[1] == pytest.approx(central(fn, args, i), rel=1e-5, abs=1e-8)


def test_tuple_state_sensitivity_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backward loop of a tuple state that keeps its previous value: `d_prev` (ZERO
    after each step) and `d_state = gadd(d_prev, (...))` are split into one slot per item
    (`opt/loops.split_tuple_state`), so no tuple with ZERO items is carried: the
    objective's code is float slots, as the float spelling's."""
    source = tl.jit(tuned_toss_state).source_for(20.0, 1.6)
    assert "d_prev_0" in source and "d_state_1" in source, source
    assert "_gadd(d_prev" not in source and "_rt.ZERO" not in source, source
    for args in ((20.0, 1.6), (3.0, 0.9)):
        for i in range(2):
            on = tl.value_and_grad(toss_state, i)(*args)
            monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
            off = tl.value_and_grad(toss_state, i)(*args)
            monkeypatch.delenv("TAPELESS_OPTIMIZE")
            assert on[0] == pytest.approx(off[0], rel=1e-12)
            assert on[1] == pytest.approx(off[1], rel=1e-12)
            assert on[1] == pytest.approx(central(toss_state, args, i), rel=1e-5)


# --- the lowering itself ---------------------------------------------------------------------


def _lowered(source: str) -> str:
    import ast

    tree = ast.parse(textwrap.dedent(source))
    assert native_loops.lower_linked_stacks(tree) == 1
    return ast.unparse(tree)


def test_stack_popped_under_its_own_name() -> None:
    """The backward loop moves the stack on under the name the forward loop pushed it by
    (`S = rest`, or `S = S[1]`): the stack is still a list."""
    for move in ("rest = s[1]\n" + " " * 20 + "s, d = rest, d + x",
                 "s = s[1]\n" + " " * 20 + "d = d + 1.0"):
        out = _lowered(f"""
        def f(n):
            for i in range(3):
                s = None
                x = 0.0
                while x < n:
                    x = x + 1.0
                    s = (), s
                d = 0.0
                while s is not None:
                    {move}
            return d
        """)
        assert "is not None" not in out and "(), s" not in out, out


def test_stack_kept_linked_when_otherwise_assigned() -> None:
    """A store of the stack that is no pop loop's move keeps it linked (not lowered)."""
    import ast

    tree = ast.parse(textwrap.dedent("""
    def f(n):
        s = None
        x = 0.0
        while x < n:
            x = x + 1.0
            s = (x,), s
        s = None
        while s is not None:
            rest = s[1]
            s = rest
        return x
    """))
    assert native_loops.lower_linked_stacks(tree) == 0


def test_one_items_list_per_function_in_a_loop_nest() -> None:
    """A stack started inside an outer loop appends to one list made at the function's
    start (each run's stack a range of it), not to a list made per run."""
    out = _lowered("""
    def f(n):
        total = 0.0
        for i in range(3):
            s = None
            x = 0.0
            while x < n:
                x = x + 1.0
                s = (x,), s
            while s is not None:
                rest = s[1]
                total = total + s[0][0]
                s = rest
        return total
    """)
    first = out.splitlines()[1].strip()
    assert first.startswith("_nt_items") and first.endswith("= []"), out
    assert out.count("= []") == 1, out
