"""Activity analysis (`tapeless/ad/activity.py`): J differentiates only the values that
the differentiated arguments vary and that the output depends on.

Two kinds of tests: the gradients are the same as without the analysis
(`TAPELESS_ACTIVITY=0`) and as finite differences or the analytic derivative, through
calls, closures, loops, recursion, nested `tl.grad` and user rules; and the pruning
happens (no sensitivity code for integer arguments, no stack for a loop the gradient
does not depend on), each structural test checked both ways so that it can fail."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gradcheck import check_directional, leaves
from research_programs import det_laplace as det
from test_grad import CORPUS, _quiet, _quiet_call

import tapeless as tl
from tapeless.ad.activity import Activity
from tapeless.grad_api import graph_of
from tapeless.ir.nodes import graph_nodes


@pytest.fixture
def activity_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bool], None]]:
    """A switch for the analysis (read when a gradient is built)."""
    def switch(on: bool) -> None:
        if on:
            monkeypatch.delenv("TAPELESS_ACTIVITY", raising=False)
        else:
            monkeypatch.setenv("TAPELESS_ACTIVITY", "0")
    yield switch


def both_ways(switch: Callable[[bool], None], fn: Callable, argnums: Any,
              args: tuple) -> tuple[Any, Any, str, str]:
    """The gradient and its source with the analysis on, then off (fresh transforms)."""
    switch(True)
    on = tl.grad(fn, argnums)
    g_on = on(*args)
    switch(False)
    off = tl.grad(fn, argnums)
    g_off = off(*args)
    switch(True)
    return g_on, g_off, on.source, off.source


def assert_close(a: Any, b: Any, rtol: float = 1e-12) -> None:
    for x, y in zip(leaves(a if isinstance(a, tuple) else (a,)),
                    leaves(b if isinstance(b, tuple) else (b,)), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-300)


# --- programs ----------------------------------------------------------------------------




def game(x, y, a, b):
    return 0.5 * x * x + a * x * y - 0.5 * y * y + b * math.sin(x)


def saddle(a, b):
    y = 0.0
    x = 0.0
    for _ in range(2):
        for _ in range(3):
            x = x - 0.3 * tl.grad(game, argnums=0)(x, y, a, b)
        y = y + 0.3 * tl.grad(game, argnums=1)(x, y, a, b)
    return game(x, y, a, b)


def penalized_saddle(p, a, b):
    """p's gradient, 2 p, does not depend on the saddle point found for (a, b)."""
    return p * p + saddle(a, b)


def landing(v, angle):
    x, y = 0.0, 0.0
    vx = v * math.cos(angle)
    vy = v * math.sin(angle)
    px, py = x, y
    while y >= 0.0:
        px, py = x, y
        x = x + vx * 0.05
        y = y + vy * 0.05
        vx = vx - 0.1 * vx * 0.05
        vy = vy - (9.81 + 0.1 * vy) * 0.05
    return px + (x - px) * py / (py - y)


def aimed(v, target):
    angle = 0.6
    for _ in range(2):
        angle = angle - 0.002 * tl.grad(lambda a: (landing(v, a) - target) ** 2)(angle)
    return landing(v, angle) + 0.01 * v * v


def counted(x, scale, n):
    """A float loop counter and a step that depend on nothing differentiated."""
    total = 0.0
    t = 0.0
    for i in range(n):
        t = t + 0.5
        total = total + math.sin(x * t) * scale + i
    return total


def power_sum(x, c, n):
    """Recursion with an int and an undifferentiated float."""
    if n == 0:
        return 0.0
    return c * x ** n + power_sum(x, c * 0.5, n - 1)


def apply_twice(f, v):
    return f(f(v))


def closures(x, w):
    scale = w * 2.0
    g = lambda v: math.tanh(v * scale) + w  # noqa: E731
    return apply_twice(g, x) + sum(g(x * k) for k in range(3))


def only_compared(x, y):
    """y's value decides a branch but is not part of the result (varied, not useful)."""
    s = y * 3.0
    if s > 1.0:
        return x * x
    return math.sin(x)


def stopped(x, y):
    return x * tl.stop_gradient(x * y) + y


@tl.custom_vjp
def scaled_square(x, c):
    return c * x * x


def _scaled_square_fwd(x, c):
    return c * x * x, (x, c)


def _scaled_square_bwd(res, d):
    x, c = res
    return 2.0 * c * x * d, x * x * d


scaled_square.defvjp(_scaled_square_fwd, _scaled_square_bwd)


def with_rule(x, c):
    return scaled_square(x, c) + scaled_square(c, 2.0)


@tl.checkpoint
def sin_scaled(v, k):
    return math.sin(v * k) * k


def checkpointed(x, c):
    return sin_scaled(x, c) + sin_scaled(c, 1.5)


def fd(f: Callable, args: tuple, i: int, h: float = 1e-6) -> float:
    lo, hi = list(args), list(args)
    lo[i] -= h
    hi[i] += h
    return (f(*hi) - f(*lo)) / (2 * h)


SCALAR_CASES = [
    ("counted", counted, (0.7, 1.3, 5)),
    ("power_sum", power_sum, (0.9, 1.2, 6)),
    ("closures", closures, (0.4, 0.8)),
    ("only_compared", only_compared, (0.3, 0.5)),
    ("stopped", stopped, (0.7, -1.2)),
    ("with_rule", with_rule, (0.6, 1.7)),
    ("checkpointed", checkpointed, (0.6, 1.7)),
    ("saddle", saddle, (0.7, 0.4)),
    ("aimed", aimed, (12.0, 9.0)),
]


@pytest.mark.parametrize(("name", "fn", "args"), SCALAR_CASES, ids=[c[0] for c in SCALAR_CASES])
def test_gradient_in_each_argument_matches_off_and_finite_differences(
        name: str, fn: Callable, args: tuple, activity_off: Callable[[bool], None]) -> None:
    floats = [i for i, a in enumerate(args) if isinstance(a, float)]
    # (The nested derivatives take seconds to compile: one argument of each.)
    nested = name in ("saddle", "aimed")
    for argnums in [(floats[-1],)] if nested else [*[(i,) for i in floats], tuple(floats)]:
        on, off, _, _ = both_ways(activity_off, fn, argnums, args)
        assert_close(on, off)
        for i, g in zip(argnums, on, strict=True):
            # (stop_gradient's derivative is zero by definition, not the slope.)
            want = (args[0] * args[1], 1.0)[i] if name == "stopped" else \
                fd(fn, args, i, 1e-5 if name == "aimed" else 1e-6)
            assert g == pytest.approx(want, rel=1e-5, abs=1e-7), (name, argnums, i)


def test_determinant_gradient_is_the_cofactor_matrix(activity_off: Callable) -> None:
    A = np.random.default_rng(0).standard_normal((5, 5))
    on, off, _, _ = both_ways(activity_off, det, 0, (A,))
    want = np.linalg.det(A) * np.linalg.inv(A).T
    np.testing.assert_allclose(on, want, rtol=1e-10)
    np.testing.assert_allclose(on, off, rtol=1e-13)


def test_mixed_second_derivative_through_nested_grads(activity_off: Callable) -> None:
    """The inner gradient differentiates y only (x is a constant to it); the outer one
    differentiates that in x: the cross term 3 x^2 cos(y) + 2 y."""
    def f(x, y):
        return x ** 3 * math.sin(y) + x * y * y

    def inner(x, y):
        return tl.grad(f, 1)(x, y)

    x, y = 0.8, -0.6
    on, off, _, _ = both_ways(activity_off, inner, 0, (x, y))
    assert on == pytest.approx(3 * x * x * math.cos(y) + 2 * y, rel=1e-13)
    assert on == off
    hess = tl.hessian(f, 0)(x, y)
    assert hess == pytest.approx(6 * x * math.sin(y), rel=1e-13)
    outer = tl.grad(tl.grad(f, 1), 0)(x, y)
    assert outer == pytest.approx(on, rel=1e-13)


# --- pruning -----------------------------------------------------------------------------


def test_integer_arguments_get_no_sensitivity_code(activity_off: Callable) -> None:
    A = np.random.default_rng(1).standard_normal((4, 4))
    _, _, on, off = both_ways(activity_off, det, 0, (A,))
    for name in ("d_row", "d_cols"):
        assert name in off  # (the test can fail)
        assert name not in on, on


def test_loop_saves_nothing_for_values_no_input_varies(activity_off: Callable) -> None:
    """det_minor's loop pushes neither the column slices nor the counter k nor `rest`."""
    A = np.random.default_rng(1).standard_normal((4, 4))
    _, _, on, off = both_ways(activity_off, det, 0, (A,))

    def pushed(src: str) -> list[str]:
        # (the stack's name: `stack`, or `stack_1` where the lifted backpropagator, a
        # module function emitted first, took it)
        line = next(ln for ln in src.splitlines()
                    if re.match(r"stack(_\d+)? = \(", ln.strip()))
        items = line.strip().split(" = (", 1)[1].split("), stack")[0]
        return [x.strip() for x in items.split(",")]

    # (the counter by its name; the slices and `rest` by number: without the analysis
    # the tuple holds them too, three more items, whatever else the records' pruning
    # leaves in both)
    assert any(re.fullmatch(r"k(_\d+)?", x) for x in pushed(off)), pushed(off)
    assert not any(re.fullmatch(r"k(_\d+)?", x) for x in pushed(on)), pushed(on)
    assert len(pushed(on)) <= len(pushed(off)) - 3, (pushed(on), pushed(off))


def test_a_saddle_point_the_gradient_does_not_depend_on_is_not_recorded(
        activity_off: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    """d/dp of p^2 + saddle(a, b) is 2 p: J runs the nested descent loops as they are,
    with no stack and no backward loop (shown with the optimizer off, which otherwise
    removes them afterwards, where it can see that nothing reads them)."""
    monkeypatch.setenv("TAPELESS_OPTIMIZE", "0")
    on, off, src_on, src_off = both_ways(activity_off, penalized_saddle, 0, (1.5, 0.7, 0.4))
    assert on == 3.0 and off == 3.0
    for pushes_or_pops in ("), stack", "while stack"):
        assert pushes_or_pops in src_off
        assert pushes_or_pops not in src_on, src_on


def test_analysis_of_the_determinant() -> None:
    """Which values of det_minor the analysis finds active."""
    act = Activity(graph_of(det), (0,))
    minor = next(g for g in act.graphs if g.name == "det_minor")
    assert [act.active(p) for p in minor.parameters] == [True, False, False]
    body = next(g for g in act.graphs if g.name.startswith("for_body"))
    named = {p.name: act.active(p) for p in body.parameters}
    assert named["total"] and not named["sign"] and not named["k"]
    nodes = {n.name: act.active(n) for n in graph_nodes(body) if n.name}
    assert nodes["total"] and not nodes["rest"] and not nodes["sign"]
    active, total = act.counts()
    assert 0 < active < total // 2


def test_analysis_sees_varied_values_that_are_not_useful() -> None:
    act = Activity(graph_of(only_compared), (0, 1))
    s = next(n for g in act.graphs for n in graph_nodes(g) if n.name == "s")
    assert s.id in act.varied and s.id not in act.useful and not act.active(s)
    x, y = graph_of(only_compared).parameters
    assert act.active(x) and not act.active(y)


def test_a_function_passed_as_a_value_is_differentiated_in_all_its_arguments() -> None:
    act = Activity(graph_of(closures), (1,))
    lam = next(g for g in act.graphs if g.name.startswith("lambda"))
    assert all(act.active(p) for p in lam.parameters)


# --- the differential corpus and random programs, one argument at a time ------------------


def _scalar_corpus() -> list:
    out = []
    for p in CORPUS:
        name, k, fn, args, argnums = p.values
        if not isinstance(_quiet_call(fn, args), (float, np.floating)):
            continue
        out.append(pytest.param(name, k, fn, args, argnums, id=f"{name}-{k}"))
    return out


@pytest.mark.parametrize(("name", "k", "fn", "args", "argnums"), _scalar_corpus())
def test_corpus_gradient_in_each_argument(name: str, k: int, fn: Any, args: tuple,
                                          argnums: tuple[int, ...],
                                          activity_off: Callable) -> None:
    """Each differentiable argument alone (the others, and every int, are constants to
    the analysis): the same gradient as with the analysis off, and as finite
    differences."""
    from test_grad import CORPUS_RTOL, CORPUS_SKIP

    if (name, k) in CORPUS_SKIP:
        pytest.skip(CORPUS_SKIP[(name, k)])
    rng = np.random.default_rng(k)
    for i in argnums:
        with _quiet():
            on, off, _, _ = both_ways(activity_off, fn, (i,), args)
        for a, b in zip(leaves(on), leaves(off), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14,
                                       err_msg=f"{name} d/d arg{i}")
        with _quiet():
            check_directional(on, fn, args, (i,), rng,
                              rtol=CORPUS_RTOL.get((name, k), 1e-6), what=name)


def test_random_programs_gradient_in_each_argument(tmp_path: Path,
                                                   activity_off: Callable) -> None:
    """Generated programs `f(x, y, n)`: d/dx alone and d/dy alone, with the analysis on,
    equal the gradient in both computed with it off."""
    from test_random_programs import RandomChoices, generate_program
    from test_random_programs import load_program as load

    compared = 0
    for seed in range(8):
        program = generate_program(RandomChoices(9000 + seed), size=18)
        fn = getattr(load(program, tmp_path), program.entry)
        rng = random.Random(seed)
        for _ in range(2):
            point = (rng.uniform(-2, 2), rng.uniform(-2, 2), rng.randint(0, 4))
            try:
                with _quiet():
                    value = fn(*point)
                    activity_off(False)
                    both = tl.grad(fn, (0, 1))(*point)
            except (ArithmeticError, ValueError, AssertionError):
                continue
            finally:
                activity_off(True)
            if not isinstance(value, float):
                continue
            with _quiet():
                gx = tl.grad(fn, 0)(*point)
                gy = tl.grad(fn, 1)(*point)
            for got, want in ((gx, both[0]), (gy, both[1])):
                assert got == pytest.approx(want, rel=1e-12, abs=1e-14, nan_ok=True), \
                    f"{point}\n{program.source}"
            compared += 1
    assert compared >= 6


def test_the_switch_is_read_when_a_gradient_is_built(activity_off: Callable) -> None:
    activity_off(False)
    assert "d_cols" in tl.grad(det).source
    activity_off(True)
    assert "d_cols" not in tl.grad(det).source
