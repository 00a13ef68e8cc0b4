"""Loop-carried sensitivities as an affine map on the native backend (issue 15,
`backend/native_affine.py`): a backward loop's turn rewritten as factors of saved values
and one product-and-sum per carried sensitivity, so the chain from one turn to the next
is short. Results: the Python backend's (1e-12), gradients also against finite
differences; the rewrite on hand-written loops, run as Python, against the original, and
the loops it leaves."""

from __future__ import annotations

import ast
import math
import textwrap
from typing import Any

import numpy as np
import pytest

pytest.importorskip("numba")

from test_corpus import assert_same  # noqa: E402
from test_native_intlists import _entry, _own_cache, _source  # noqa: E402, F401

import tapeless as tl  # noqa: E402
from tapeless.backend.native_affine import lower_affine_loops  # noqa: E402
from tapeless.backend.native_recompute import recompute_saved_items  # noqa: E402


@pytest.fixture(autouse=True)
def _plain_optimizer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)


# --- programs written here: while loops, two with a nested derivative --------------------


def projectile(v, drag):
    """A shot with quadratic drag stepped until it lands; where it lands."""
    x, y = 0.0, 0.0
    vx, vy = v * math.cos(0.7), v * math.sin(0.7)
    while y >= 0.0:
        speed = math.sqrt(vx * vx + vy * vy)
        vx = vx - 0.002 * drag * speed * vx
        vy = vy - 0.002 * (9.81 + drag * speed * vy)
        x = x + 0.002 * vx
        y = y + 0.002 * vy
    return x


def cubic(t, a):
    return t * t * t + a * t - 1.0


def newton_root(a, b):
    """The root of a cubic by Newton's method in a while loop, its slope by a nested
    `tl.grad`."""
    t = 1.0
    step = 1.0
    while abs(step) > 1e-13:
        step = cubic(t, a) / tl.grad(cubic)(t, a)
        t = t - step
    return t * b + t * t


def energy(x, k):
    return 0.5 * k * x * x + 0.25 * x * x * x * x


def relax(k, c):
    """A damped particle in a quartic well, its force by a nested `tl.grad`, stepped
    until it is slow and near the bottom."""
    x, v, t = 1.5, 0.0, 0.0
    while x * x + v * v > 0.01:
        a = -tl.grad(energy)(x, k) - c * v
        v = v + 0.01 * a
        x = x + 0.01 * v
        t = t + 0.01
    return t * x + v


def spring(k, c):
    """A spring with drag `c v |v|`, stepped until its energy is small."""
    x, v, t = 1.0, 0.0, 0.0
    while x * x + v * v > 0.01:
        a = -k * x - c * v * abs(v)
        v = v + 0.01 * a
        x = x + 0.01 * v
        t = t + 0.01
    return t * x + v


CASES = [
    (projectile, (10.0, 0.1)),
    (newton_root, (0.5, 2.0)),
    (relax, (2.0, 0.7)),
    (spring, (3.0, 0.2)),
]


def _fd(f: Any, args: tuple, i: int, eps: float = 1e-6) -> float:
    hi, lo = list(args), list(args)
    hi[i] += eps
    lo[i] -= eps
    return (f(*hi) - f(*lo)) / (2 * eps)


def _affine_turns(source: str) -> list[list[ast.stmt]]:
    """The rewritten turns of the entry's loops: a loop's body under the guard
    `isinstance(copy, float)`, or its whole body where the carried values start as float
    constants (no guard)."""
    fn = ast.parse(source).body[0]
    out = []
    for n in ast.walk(fn):
        if not isinstance(n, (ast.For, ast.While)):
            continue
        if len(n.body) == 1 and isinstance(n.body[0], ast.If) and \
                "isinstance" in ast.unparse(n.body[0].test):
            out.append(n.body[0].body)
        elif any(isinstance(m, ast.Name) and m.id.startswith("_nt_a")
                 for stmt in n.body for m in ast.walk(stmt)):
            out.append(n.body)
    return out


@pytest.mark.parametrize("f,args", CASES, ids=[c[0].__name__ for c in CASES])
def test_native_gradient_equals_python_and_finite_differences(f: Any, args: tuple) -> None:
    nat = tl.value_and_grad(f, (0, 1), backend="native")
    py = tl.value_and_grad(f, (0, 1))
    for _ in range(2):  # (the second call runs the native code alone)
        got = nat(*args)
        assert_same(py(*args), got)
    assert _entry(nat, *args).is_native
    for i in (0, 1):
        assert got[1][i] == pytest.approx(_fd(f, args, i), rel=1e-5, abs=1e-7)


# (spring's turn calls `np.sign`: counted as a call's work, so its loop is left as it is)
@pytest.mark.parametrize("f,args", CASES[:3], ids=[c[0].__name__ for c in CASES[:3]])
def test_backward_loop_is_an_affine_map(f: Any, args: tuple) -> None:
    """The backward loop's carried sensitivities are bound once, at the end of the turn,
    from factors that read none of them: no division or other operation of the turn
    waits for the last turn's sensitivities."""
    nat = tl.value_and_grad(f, (0, 1), backend="native")
    nat(*args)
    turns = _affine_turns(_source(nat, *args))
    assert turns, "no backward loop rewritten"
    for turn in turns:
        *factors, last = turn
        assert isinstance(last, ast.Assign)
        target = last.targets[0]
        carried = {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        for stmt in factors:
            if isinstance(stmt, ast.Assign) and any(
                    isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and
                    n.func.id == "abs" for n in ast.walk(stmt.value)):
                continue  # (the range check's sum of squares or least divisor)
            read = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}
            if read & carried:  # (only `u = d + k`, u then read as d is)
                assert isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.BinOp) \
                    and isinstance(stmt.value.op, ast.Add) and \
                    isinstance(stmt.value.left, ast.Name) and \
                    not {n.id for n in ast.walk(stmt.value.right)
                         if isinstance(n, ast.Name)} & carried, ast.unparse(stmt)
                carried |= {n.id for n in stmt.targets if isinstance(n, ast.Name)}
        # (each carried value: a sum of products, one factor the old value)
        for value in (last.value.elts if isinstance(last.value, ast.Tuple) else [last.value]):
            assert not any(isinstance(n, ast.Call) for n in ast.walk(value))
            assert not any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div)
                           for n in ast.walk(value))


# --- the rewrite on hand-written loops -------------------------------------------------------

CHAIN = """
def f(xs, d, e, w):
    _fdiv = _nt_fdiv
    total = 0.0
    for i in range(len(xs) - 1, -1, -1):
        x = xs[i]
        u = d + 0.5
        p = -u * x * w
        q = _fdiv(p * 0.5 + e * x, x + 2.0)
        d = u + q * x + q
        e = e - 0.1 * q * w + d * 0.25
        total = total + q
    return d, e, total
"""


def _nt_fdiv(a: float, b: float) -> float:
    if b == 0:
        raise ZeroDivisionError("float division by zero")
    return a / b


def _run(source: str, *args: Any) -> Any:
    namespace: dict[str, Any] = {"_nt_fdiv": _nt_fdiv, "np": np}
    exec(compile(source, "<test>", "exec"), namespace)  # noqa: S102
    return namespace["f"](*args)


def _lowered(source: str) -> tuple[int, str]:
    tree = ast.parse(textwrap.dedent(source))
    n = lower_affine_loops(tree)
    ast.fix_missing_locations(tree)
    return n, ast.unparse(tree)


def test_rewritten_loop_runs_as_the_original() -> None:
    n, out = _lowered(CHAIN)
    assert n == 1
    xs = np.linspace(0.3, 2.0, 50)
    expected = _run(CHAIN, xs, 0.2, -0.4, 0.9)
    got = _run(out, xs, 0.2, -0.4, 0.9)
    for a, b in zip(expected, got, strict=True):
        assert b == pytest.approx(a, rel=1e-12)
    # (the division by the same divisor once per turn, by its reciprocal)
    assert out.count("_fdiv(1.0") == 1
    # (arrays run the original turn: the factors would be arrays)
    ones = np.ones(3)
    expected = _run(CHAIN, xs, 0.2 * ones, -0.4 * ones, 0.9)
    got = _run(out, xs, 0.2 * ones, -0.4 * ones, 0.9)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_no_guard_where_the_carried_values_start_as_floats() -> None:
    source = CHAIN.replace("    total = 0.0\n", "    total = 0.0\n    d, e = 0.5, -0.25\n")
    n, out = _lowered(source)
    assert n == 1 and "isinstance" not in out
    xs = np.linspace(0.3, 2.0, 50)
    for a, b in zip(_run(source, xs, 0.0, 0.0, 0.9), _run(out, xs, 0.0, 0.0, 0.9),
                    strict=True):
        assert b == pytest.approx(a, rel=1e-12)


def test_busy_turn_left_as_it_is() -> None:
    """The same chain where the turn also calls `sin` and `cos` (the saddle's inner loop
    calls `sin`): the turn's work, not its chain, sets its time; rewriting would add to
    the work."""
    source = CHAIN.replace("        x = xs[i]\n",
                           "        x = xs[i] + math.sin(xs[i]) * math.cos(xs[i])\n")
    n, _ = _lowered(source)
    assert n == 0


def test_division_by_zero_still_raises() -> None:
    _, out = _lowered(CHAIN)
    xs = np.array([1.0, -2.0, 0.5])
    with pytest.raises(ZeroDivisionError):
        _run(out, xs, 0.2, -0.4, 0.9)


def test_turn_out_of_range_raises_for_the_python_backend() -> None:
    """The rewritten loop raises (native code's call then runs on the Python backend)
    where a carried value or a factor was too large or not finite, where the reordered
    products could overflow and the original's not, or the reverse."""
    _, out = _lowered(CHAIN)
    xs = np.linspace(0.3, 2.0, 5)
    assert "FloatingPointError" in out
    for d, w in ((1e300, 0.9), (0.2, 1e60), (math.inf, 0.9), (math.nan, 0.9)):
        with np.errstate(all="ignore"), pytest.raises(FloatingPointError):
            _run(out, xs, d, -0.4, w)
    _run(out, xs, 0.0, -0.4, 1e-30)  # (0 and moderate magnitudes: no check fails)
    # (a divisor too small: its reciprocal, a factor in the reordered turn, too large)
    source = CHAIN.replace("x + 2.0)", "x)")
    n, out = _lowered(source)
    assert n == 1
    _run(out, xs, 0.2, -0.4, 0.9)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError):
        _run(out, np.array([0.5, 1e-200, 0.7]), 0.2, -0.4, 0.9)


TARGET_BOUND_BEFORE = """
def f(xs, d, e, w):
    x = 1.0
    for x in xs:
        u = d * x
        v = u * w + e
        t = v * x - u
        r = t * w + v * 0.5
        d = r * x + t * w - v
        e = e * w + r * 0.5 + t * 0.25
    return d, e
"""


def test_a_for_loops_target_is_tested_each_turn() -> None:
    """A `for` loop's target bound before the loop too: its range is tested in the
    turn, not once before the loop on the value it had then (which let a turn overflow
    where the original stays finite)."""
    n, out = _lowered(TARGET_BOUND_BEFORE)
    assert n == 1
    xs = np.linspace(0.3, 2.0, 5)
    assert _run(out, xs, 0.2, -0.4, 0.9) == pytest.approx(
        _run(TARGET_BOUND_BEFORE, xs, 0.2, -0.4, 0.9), rel=1e-12)
    with np.errstate(all="ignore"):
        assert all(map(math.isfinite, _run(TARGET_BOUND_BEFORE, [1e120], 1e-200, 0.0, 0.9)))
        with pytest.raises(FloatingPointError):
            _run(out, [1e120], 1e-200, 0.0, 0.9)


ONE_QUOTIENT = """
def f(xs, d, w):
    _fdiv = _nt_fdiv
    for i in range(len(xs) - 1, -1, -1):
        x = xs[i]
        u = d * w + 0.5
        v = _fdiv(d * w, x) * w
        d = v * x + 0.25 * v - u * w
    return d
"""


def test_least_divisor_of_a_single_factor_tested() -> None:
    """A division of one factor (no reciprocal made): the divisor's least magnitude is
    kept (`min`) and tested after the loop."""
    n, out = _lowered(ONE_QUOTIENT)
    assert n == 1 and "min(abs(x)" in out
    xs = np.linspace(0.3, 2.0, 5)
    assert _run(out, xs, 0.2, 0.9) == pytest.approx(_run(ONE_QUOTIENT, xs, 0.2, 0.9),
                                                     rel=1e-12)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError):
        _run(out, np.array([0.5, 1e-200, 0.7]), 0.2, 0.9)


def test_constant_factor_out_of_range_left_as_it_is() -> None:
    n, _ = _lowered(CHAIN.replace("0.1 * q * w", "1e80 * q * w"))
    assert n == 0


def chained(x, w, s):
    k = 0
    while k < 3:
        u = x * w
        v = u * s
        x = (v * w + u) / (2.0 + s) * s
        k += 1
    return x * 1e-300


def test_reordered_turn_never_differs_in_finiteness() -> None:
    """Near the float range's ends the rewritten turn's products (`w * s` before the
    sensitivity) overflow or underflow where the original's (`d * w`, then `* s`) do
    not: without the range check 615 of 3,000 draws gave an infinity where the Python
    backend gives a finite value or NaN, or the reverse. Every draw's result now has the
    Python backend's finiteness, and the program stays native."""
    py = tl.grad(chained, (0, 1, 2))
    nat = tl.grad(chained, (0, 1, 2), backend="native")
    assert_same(py(1.0, 0.5, 0.7), nat(1.0, 0.5, 0.7))
    assert _affine_turns(_source(nat, 1.0, 0.5, 0.7)), "no backward loop rewritten"
    rng = np.random.default_rng(0)
    draws = [(-1.702420690006459e+69, 1.6089129864347943e-70, 2.1181732227433606e+298),
             *(tuple(rng.choice([-1.0, 1.0], 3) * 10.0 ** rng.uniform(-300, 300, 3))
               for _ in range(400))]
    for x, w, s in draws:
        with np.errstate(all="ignore"):
            try:
                expected = py(x, w, s)
            except (ArithmeticError, ValueError):
                continue
            got = nat(x, w, s)
        assert np.array_equal(np.isfinite(expected), np.isfinite(got)) and \
            np.array_equal(np.isnan(expected), np.isnan(got)), (x, w, s, expected, got)
    assert _entry(nat, 1.0, 0.5, 0.7).is_native
    assert_same(py(1.0, 0.5, 0.7), nat(1.0, 0.5, 0.7))


@pytest.mark.parametrize("body,why", [
    ("d = d * d * x * x + 1.0", "a product of two carried values"),
    ("while_test", "the loop's test reads the carried value"),
    ("d = d * x * x * x + 1.0\n        y = np.sin(d)", "a carried value passed to a call"),
    ("u = (d + 1.0) * x * x * x\n        d = u", "an intermediate read after the loop"),
    ("d = d * x + w", "the chain is one product and one sum already"),
    ("d = (d * x * x * x) if x > 0 else d", "a conditional expression"),
    ("d = d * x * x * x\n        xs[i] = d", "a statement other than an assignment"),
])
def test_loops_left_as_they_are(body: str, why: str) -> None:
    if body == "while_test":
        source = """
def f(xs, d, w):
    out = []
    i = 0
    while d < 10.0:
        d = (d + 1.0) * 1.5 * w * w
        i = i + 1
    return d
"""
    else:
        source = f"""
def f(xs, d, e, w):
    out = []
    u = 0.0
    for i in range(len(xs)):
        x = xs[i]
        {body}
    return d, u
"""
    n, _ = _lowered(source)
    assert n == 0, why


def test_only_the_affine_names_rewritten() -> None:
    """`e` is squared each turn (left as it is); `d` and `total` are affine and read
    nothing of `e`'s: they are rewritten, `e` keeps its statement."""
    source = """
def f(xs, d, e, w):
    total = 0.0
    for i in range(len(xs)):
        x = xs[i]
        e = e * e * 0.5 + x
        p = -(d + 0.5) * x * w * x
        d = d + p * 0.1 + p * 0.2
        total = total + d * x
    return d, e, total
"""
    n, out = _lowered(source)
    assert n == 1
    assert "e = e * e * 0.5 + x" in out
    xs = np.linspace(0.1, 0.9, 20)
    expected, got = _run(source, xs, 0.3, 0.2, 0.7), _run(out, xs, 0.3, 0.2, 0.7)
    for a, b in zip(expected, got, strict=True):
        assert b == pytest.approx(a, rel=1e-12)


# --- saved items recomputed where read (`backend/native_recompute.py`) -----------------------

STACK = """
def f(xs, k):
    stack = []
    stack_append = stack.append
    s = 0.0
    for i in range(len(xs)):
        x = xs[i]
        a = k * x
        b = 0.5 * k
        c = b * x + a
        r = math.sqrt(c * c + 1.0)
        stack_append((a, x, b, c, s, r))
        s = s + c * r
    d = 0.0
    seq = stack
    for j in range(len(seq) - 1, -1, -1):
        saved = seq[j]
        d = d * 0.5 + saved[0] * saved[2] - saved[3] * saved[4] + saved[1] * saved[5]
    return s, d
"""


def _recomputed(source: str) -> tuple[int, str]:
    tree = ast.parse(textwrap.dedent(source))
    n = recompute_saved_items(tree)
    ast.fix_missing_locations(tree)
    return n, ast.unparse(tree)


def _run_math(source: str, *args: Any) -> Any:
    namespace: dict[str, Any] = {"math": math}
    exec(compile(source, "<test>", "exec"), namespace)  # noqa: S102
    return namespace["f"](*args)


def test_items_recomputed_from_the_others() -> None:
    n, out = _recomputed(STACK)
    assert n == 3  # (a, b and c: of x, the parameter k and constants; r is a call's)
    assert "stack_append((x, s, r))" in out
    xs = np.linspace(-1.0, 2.0, 30)
    assert _run_math(out, xs, 0.7) == _run_math(STACK, xs, 0.7)  # (bit for bit)


@pytest.mark.parametrize("change", [
    "    k = k + 1.0\n",  # (bound again)
    "    k[0] = 1.0\n",  # (changed in place)
    "    k.fill(1.0)\n",
    "    np.copyto(k, 1.0)\n",
])
def test_item_of_a_name_that_may_change_kept(change: str) -> None:
    """k bound again or changed in place after the loop: `k * x` and `0.5 * k` stay
    saved (the backward loop would read the new k); `c` is still recomputed, from them."""
    source = STACK.replace("    d = 0.0\n", change + "    d = 0.0\n")
    n, out = _recomputed(source)
    assert n == 1
    assert "stack_append((a, x, b, s, r))" in out
    if change.startswith("    k = "):
        xs = np.linspace(-1.0, 2.0, 30)
        assert _run_math(out, xs, 0.7) == _run_math(source, xs, 0.7)


@pytest.mark.parametrize("change,why", [
    ("    d = len(seq[0])\n", "an item read whole"),
    ("    stack.append((0.0, 0.0, 0.0, 0.0, 0.0, 0.0))\n    d = 0.0\n", "a second push"),
])
def test_stacks_left_as_they_are(change: str, why: str) -> None:
    source = STACK.replace("    d = 0.0\n", change)
    n, _ = _recomputed(source)
    assert n == 0, why


def test_particle_saves_three_floats_a_step() -> None:
    nat = tl.value_and_grad(projectile, (0, 1), backend="native")
    nat(10.0, 0.1)
    source = _source(nat, 10.0, 0.1)
    pushes = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call) and
              isinstance(n.func, ast.Name) and n.func.id.endswith("append")]
    assert len(pushes) == 1
    saved = pushes[0].args[0]
    assert isinstance(saved, ast.Tuple) and len(saved.elts) == 3, ast.unparse(saved)


def test_carried_name_unbound_before_the_loop_left() -> None:
    """`d` read by the turn before it is bound, and bound nowhere before the loop (a loop
    of no turn reads nothing): no copy of it can be made before the loop."""
    source = """
def f(xs, w):
    _fdiv = _nt_fdiv
    for i in range(len(xs)):
        x = xs[i]
        d = _fdiv((d + 1.0) * x * w * x * w, x + 3.0) * x * w
    return 0.0
"""
    n, _ = _lowered(source)
    assert n == 0
