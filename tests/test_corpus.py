"""Differential tests: every corpus program gives the same results (and raises the same
exceptions, and prints the same output) under CPython and under `tl.jit`."""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import numpy as np
import pytest
from corpus.programs import CASES, Args

import tapeless as tl

RTOL = 1e-12
# A program may return a function; both results are then compared on this argument.
PROBE = 0.75

PARAMS = [pytest.param(fn, args, id=f"{name}-{i}")
          for name, fn, arg_sets in CASES for i, args in enumerate(arg_sets)]
PROGRAMS = [pytest.param(fn, id=name) for name, fn, _ in CASES]


def assert_same(expected: Any, actual: Any, path: str = "result") -> None:
    """Equal values of the same types and structure: exact for ints, bools, strings and
    None; to RTOL for floats and float arrays (arrays also by shape and dtype)."""
    if callable(expected) and not isinstance(expected, type):
        assert callable(actual), f"{path}: expected a function, got {actual!r}"
        assert_same(expected(PROBE), actual(PROBE), f"{path}({PROBE})")
        return
    assert type(actual) is type(expected), \
        f"{path}: type {type(actual).__name__} != {type(expected).__name__}"
    if isinstance(expected, np.ndarray):
        assert actual.shape == expected.shape, f"{path}: shape {actual.shape} != {expected.shape}"
        assert actual.dtype == expected.dtype, f"{path}: dtype {actual.dtype} != {expected.dtype}"
        if np.issubdtype(expected.dtype, np.inexact):
            np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=0, equal_nan=True,
                                       err_msg=path)
        else:
            np.testing.assert_array_equal(actual, expected, err_msg=path)
    elif isinstance(expected, (float, np.floating)):
        if math.isnan(expected):
            assert math.isnan(actual), f"{path}: {actual!r} is not nan"
        else:
            assert actual == pytest.approx(expected, rel=RTOL, abs=0), \
                f"{path}: {actual!r} != {expected!r}"
    elif dataclasses.is_dataclass(expected):
        for f in dataclasses.fields(expected):
            assert_same(getattr(expected, f.name), getattr(actual, f.name), f"{path}.{f.name}")
    elif isinstance(expected, tuple) and hasattr(expected, "_fields"):  # NamedTuple
        for name in expected._fields:
            assert_same(getattr(expected, name), getattr(actual, name), f"{path}.{name}")
    elif isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected), f"{path}: length {len(actual)} != {len(expected)}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_same(e, a, f"{path}[{i}]")
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), f"{path}: keys {list(actual)} != {list(expected)}"
        for k in expected:
            assert_same(expected[k], actual[k], f"{path}[{k!r}]")
    else:  # int, bool, str, None, numpy integer and bool scalars, dtypes, types
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def run(fn: Any, args: Args) -> tuple[str, Any]:
    """('ok', value) or ('raised', exception type)."""
    a, k = copy.deepcopy((args.args, args.kwargs))
    try:
        return "ok", fn(*a, **k)
    except Exception as exc:  # noqa: BLE001 - the type is what we compare
        return "raised", type(exc)


@pytest.mark.parametrize(("fn", "args"), PARAMS)
def test_same_result_as_cpython(fn: Any, args: Args, capsys: pytest.CaptureFixture) -> None:
    compiled = tl.jit(fn)
    compiled.source  # noqa: B018 - compile before capturing, so only program output counts
    capsys.readouterr()
    kind, expected = run(fn, args)
    out_python = capsys.readouterr().out
    kind_jit, actual = run(compiled, args)
    out_jit = capsys.readouterr().out
    if kind == "raised":
        assert kind_jit == "raised", f"CPython raised {expected.__name__}, tapeless returned " \
                                     f"{actual!r}"
        assert actual is expected, f"CPython raised {expected.__name__}, tapeless raised " \
                                   f"{actual.__name__}"
    else:
        assert kind_jit == "ok", f"tapeless raised {actual.__name__}, CPython returned " \
                                 f"{expected!r}"
        assert_same(expected, actual)
    assert out_jit == out_python


@pytest.mark.parametrize("fn", PROGRAMS)
def test_source_compiles(fn: Any) -> None:
    source = tl.jit(fn).source
    assert source.strip()
    compile(source, "<tapeless source>", "exec")


def test_corpus_size() -> None:
    assert len(CASES) >= 150
    assert len({name for name, _, _ in CASES}) == len(CASES), "program names must be unique"


def test_corpus_exercises_exceptions_and_prints(capsys: pytest.CaptureFixture) -> None:
    """The corpus really contains programs that raise and programs that print."""
    raised: set[type] = set()
    printed = 0
    for _, fn, arg_sets in CASES:
        for args in arg_sets:
            kind, value = run(fn, args)
            if kind == "raised":
                raised.add(value)
            printed += bool(capsys.readouterr().out)
    assert {AssertionError, ZeroDivisionError, ValueError, IndexError, KeyError} <= raised
    assert printed >= 5


def test_print_order(capsys: pytest.CaptureFixture) -> None:
    from corpus.programs import print_order_with_short_circuit

    tl.jit(print_order_with_short_circuit)(2)
    assert capsys.readouterr().out == "noisy 2\nr 2\nnoisy 0\nnoisy 1\n"


def test_inline_lambdas() -> None:
    from corpus.programs import h_affine, h_three

    assert tl.jit(lambda x: h_affine(x, 7.0))(2.0) == 14.0
    f, g = tl.jit(lambda x: x + 1), tl.jit(lambda x: h_three(x, *(x, x)))
    assert (f(1), g(2)) == (2, 222)
    assert tl.jit(lambda *xs, k=2: len(xs) * k)(1, 2, 3, k=10) == 30


def walrus_in_and(x):
    b = 0
    if x > 0 and (b := x * 2) > 1:
        b = b + 1
    return b


def walrus_in_comprehension(n):
    y = -1
    out = [(y := i) for i in range(n)]
    return y, out


def walrus_in_while(n):
    while (n := n - 1) > 0:
        pass
    return n


@pytest.mark.parametrize("fn", [walrus_in_and, walrus_in_comprehension, walrus_in_while])
def test_assignment_expression_in_branch_is_rejected(fn: Any) -> None:
    """Where `:=` would bind only inside a branch graph, tapeless refuses the program
    instead of computing something else."""
    with pytest.raises(tl.TapelessError, match="assignment expression"):
        tl.jit(fn)(3)
