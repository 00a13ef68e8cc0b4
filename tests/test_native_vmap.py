"""`tl.vmap` of a data-dependent loop on the native backend: the masked loop that vmap
makes (a count of active elements, `np.logical_and` of masks, `np.where` selects, the
builtin `abs` of arrays) runs natively and gives the Python backend's results."""

from __future__ import annotations

import ast
import importlib.util
import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("numba")

import tapeless as tl  # noqa: E402
from tapeless.backend import native  # noqa: E402

# (bench/vmap_programs.py, loaded under another name: tests/vmap_programs.py is the
# `vmap_programs` of the test path, which a `sys.path` entry for bench/ would shadow for
# every test file collected after this one)
_spec = importlib.util.spec_from_file_location(
    "bench_vmap_programs", Path(__file__).parent.parent / "bench" / "vmap_programs.py")
assert _spec is not None and _spec.loader is not None
_bench: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench)
newton_cbrt, newton_sqrt = _bench.newton_cbrt, _bench.newton_sqrt


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPELESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("TAPELESS_NATIVE_SPEED_CHECK", "0")


def cube_root_by_bisection(c):
    """Not from the benchmark: bisection to a tolerance that depends on the element, a
    branch inside the loop that differs across the batch."""
    lo = 0.0
    hi = c + 1.0
    while hi - lo > 1e-10 * (1.0 + abs(c)):
        mid = 0.5 * (lo + hi)
        if mid * mid * mid > c:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def _fallbacks(j: Any) -> list:
    return [c.fn.fallback for c in j._compiled.values()]


@pytest.mark.parametrize("f", [newton_sqrt, newton_cbrt, cube_root_by_bisection])
def test_vmapped_masked_loop_runs_natively(f: Any) -> None:
    rng = np.random.default_rng(1)
    a = np.abs(rng.normal(size=257)) * 100 + 0.01
    python = tl.jit(tl.vmap(f))(a)
    j = tl.jit(tl.vmap(f), backend="native")
    for _ in range(2):  # (the first call is checked against the Python backend)
        got = j(a)
        np.testing.assert_allclose(got, python, rtol=1e-12, atol=0)
    assert _fallbacks(j) == [None]
    np.testing.assert_allclose(python, [f(float(x)) for x in a], rtol=1e-12, atol=0)


def builtin_abs(x, s, n):
    return abs(x) * abs(s) + abs(n)


def test_builtin_abs_of_arrays_and_numbers_runs_natively() -> None:
    x, s = np.array([-1.5, 2.0, -0.0]), -3.0
    j = tl.jit(builtin_abs, backend="native")
    for n in (-2, 5):
        got, expected = j(x, s, n), builtin_abs(x, s, n)
        np.testing.assert_array_equal(got, expected)
    assert _fallbacks(j) == [None]
    assert "_nt_abs(x)" in native.native_source(next(iter(j._compiled.values())))


def _refused(source: str) -> str | None:
    try:
        native.refuse_mixed_selects(ast.parse(source))
    except native._Refused as refused:
        return refused.reason
    return None


def test_bool_ufuncs_are_bools_and_numbers_still_mix() -> None:
    """`np.logical_and` (by name or through an alias bound once) gives bools, as a
    comparison does: with a comparison on the other path one type, not refused; with a
    number on the other path (or a ufunc that may give a number) refused as before."""
    ok = ("def f(a, b, c):\n    _and = np.logical_and\n"
          "    return a > b if c else _and(a, b)\n")
    assert _refused(ok) is None
    assert _refused("def f(a, b, c):\n    return np.isnan(a) if c else a < b\n") is None
    assert "bool on one path" in (_refused(
        "def f(a, b, c):\n    return np.logical_and(a, b) if c else 1\n") or "")
    assert "bool on one path" in (_refused(
        "def f(a, b, c):\n    _and = np.add\n    return a > b if c else _and(a, b)\n") or "")
    # (a name bound twice is not an alias)
    assert "bool on one path" in (_refused(
        "def f(a, b, c):\n    g = np.logical_and\n    g = np.add\n"
        "    return a > b if c else g(a, b)\n") or "")


def bool_or_number(x, c):
    return np.logical_not(x) if c > 0 else 2


@pytest.mark.parametrize("order", [(1, -1), (-1, 1)])
def test_bool_ufunc_mixed_with_a_number_keeps_each_paths_type(order: tuple) -> None:
    """Numba gives the two paths' results one type (an int64: 0 for np.False_); CPython
    keeps each path's. In either order of calls the program falls back (its typed code
    types the ufunc's call as a bool copied into an int: `unified_types`), at the user's
    line, and every call gives the Python backend's value and type."""
    j = tl.jit(bool_or_number, backend="native")
    for c in (*order, *order):
        out, expected = j(True, c), bool_or_number(True, c)
        assert out == expected and type(out) is type(expected)
    [fallback] = _fallbacks(j)
    assert fallback is not None and "bool on one path" in fallback.reason
    assert fallback.where is not None and fallback.where.filename == __file__ and \
        fallback.where.line - bool_or_number.__code__.co_firstlineno in (0, 1)


_MASKED = [  # (test_vmap_masked's programs, with arguments; whether they run natively)
    ("halve_with_break", (np.array([0.5, 1.5, 3.0, 1e6, 7.0, 0.9, 64.0]),), True),
    # (its `continue`'s select joins the other side's inner `if` of a `break` item by
    # item: no generic select left)
    ("break_and_continue", (np.array([0, 1, 5, 17, 50, 200, 2000, 3]),), True),
    ("broke_or_ran_out", (np.array([0.5, 2.0, 9.0, 11.0, 0.01, 3.0, 5.0, 5.0]),
                          np.array([3, 5, 1, 4, 6, 0, 1, 2])), True),
    ("loop_in_a_branch", (np.array([3.0, -4.0, 0.1, -0.2, 100.0, -50.0, 0.0]),), True),
    ("flag_read_in_body", (np.array([0.0, 6.0, -3.0, 7.5, 1.25]),), True),
    ("cube_root", (np.array([0.1, 1.0, 4.0, 9.5, 2.5]),), True),
    ("condition_and_break", (np.array([0.1, 1.0, 4.0, 9.5, 2.5]),), True),
    # (its flag's truth is `as_mask`'s: an `isinstance` of loop state, `np.full` of a bool)
    ("int_flag", (np.array([0.1, 1.0, 4.0, 9.5, 2.5]),), True),
    # (its `or` of two tests is `np.where(t, t, u)` of bools: a bool, not refused)
    ("nested_breaks", (np.array([0.1, 0.7, 2.0, 5.0, 30.0, 0.01]),), True),
    # (its selects bools by `np.where` since a comparison's number of axes is its
    # arguments' broadcast: no generic select left)
    ("flag_maybe_unset", (np.array([0.1, 1.0, 4.0, 9.5, 2.5]),), True),
    ("return_from_a_loop", (np.array([0.1, 0.3, 0.6, 1.0, 2.6, 6.0, -1.0]),), False),
]


@pytest.mark.parametrize(("name", "args", "is_native"), _MASKED, ids=[c[0] for c in _MASKED])
def test_masked_loops_of_the_vmap_tests(name: str, args: tuple, is_native: bool) -> None:
    """Programs written for the masked-loop tests, not for native code: native results
    are the Python backend's, exactly (the same operations on the same floats), and
    those whose batched code is flat arrays run natively (the others hold the generic
    pytree code of a returned value or a flag that is not a plain stop flag)."""
    import test_vmap_masked

    f = getattr(test_vmap_masked, name)
    python = tl.jit(tl.vmap(f))(*args)
    j = tl.jit(tl.vmap(f), backend="native")
    for _ in range(2):
        got = j(*args)
        for a, b in zip(python if isinstance(python, tuple) else (python,),
                        got if isinstance(got, tuple) else (got,), strict=True):
            assert np.asarray(a).dtype == np.asarray(b).dtype
            np.testing.assert_array_equal(a, b)
    assert (_fallbacks(j) == [None]) is is_native, _fallbacks(j)


# (the user's line each program that falls back is refused at: the `if` whose values vmap
# joins with its generic select; None: the function's own line)
_GENERIC_AT = {"return_from_a_loop": None}


@pytest.mark.parametrize("name", sorted(_GENERIC_AT))
def test_generic_selects_fall_back_at_the_users_condition(name: str) -> None:
    """Where vmap did not know the examples' number of axes as it batched an `if`, its
    select is the generic pytree code (`batch_rules.select`), which Numba cannot type:
    the reason says so (not "a bool on one path", which that code's placeholders looked
    like), at the user's `if` whose branches it joins."""
    import test_vmap_masked

    f = getattr(test_vmap_masked, name)
    args = next(a for n, a, _ in _MASKED if n == name)
    j = tl.jit(tl.vmap(f), backend="native")
    j(*args)
    [fallback] = _fallbacks(j)
    assert fallback is not None and "generic `batch_rules.select`" in fallback.reason, fallback
    assert fallback.where is not None and fallback.where.filename == test_vmap_masked.__file__
    at = _GENERIC_AT[name]
    assert fallback.where.source_line.strip() == (at or f"def {name}({f.__code__.co_varnames[0]}):")


def either_bound(x, k):
    n = 0
    while n < 30 and not (x > 100.0 or x < -100.0):
        n += 1
        x = x * 1.7 - 0.3
        if x * x > 50.0 and n > k:
            break
    return x, n


def flag_of_an_or(x):
    total = 0.0
    n = 0
    while True:
        n += 1
        total = total + x * n
        done = total > 10.0 or n >= 6
        if done:
            break
    return total, n


_OWN = [  # (programs written here, not for native code, with arguments)
    (either_bound, (np.array([0.5, -2.0, 3.0, 40.0, 0.1]), np.array([1, 4, 2, 0, 9]))),
    (flag_of_an_or, (np.array([0.1, 0.5, 1.0, 3.0, 20.0]),)),
]


def _same_as_python_and_a_loop(f: Any, args: tuple) -> Any:
    """`tl.vmap(f)` on the native backend: the Python backend's results (values and
    dtypes, exactly) on two calls, and the loop's over the batch; returns the entry."""
    python = tl.jit(tl.vmap(f))(*args)
    j = tl.jit(tl.vmap(f), backend="native")
    looped = [f(*[a[i] for a in args]) for i in range(len(args[0]))]
    for _ in range(2):
        got = j(*args)
        outs = got if isinstance(got, tuple) else (got,)
        for k, (a, b) in enumerate(zip(python if isinstance(python, tuple) else (python,),
                                       outs, strict=True)):
            assert np.asarray(a).dtype == np.asarray(b).dtype
            np.testing.assert_array_equal(a, b)
            each = [r[k] if isinstance(r, tuple) else r for r in looped]
            np.testing.assert_allclose(b, each, rtol=1e-12, atol=0)
    return j


@pytest.mark.parametrize(("f", "args"), _OWN, ids=[c[0].__name__ for c in _OWN])
def test_own_masked_programs_run_natively(f: Any, args: tuple) -> None:
    j = _same_as_python_and_a_loop(f, args)
    assert _fallbacks(j) == [None], _fallbacks(j)


def test_select_between_bools_is_a_bool() -> None:
    """`np.where` (by name or alias) of two bools is a bool (vmap's `a or b` of tests
    differing across the batch); of a bool and a number it may be a number."""
    assert _refused("def f(a, b, c, k):\n    _where = np.where\n"
                    "    return _where(c, a > b, b > 1.0) if k else a > b\n") is None
    assert "bool on one path" in (_refused(
        "def f(a, b, c, k):\n    return np.where(c, a > b, b < 1.0) if k else 0\n") or "")
    assert "bool on one path" in (_refused(
        "def f(a, b, c, k):\n    return np.where(c, a > b, 1) if k else a > b\n") or "")


def _flag_at(a, b, c):
    v = a
    if c:
        v = b
    return isinstance(v, _CONTAINERS), isinstance(a, _CONTAINERS), isinstance(v, _DICTS)


_CONTAINERS, _DICTS = (tuple, list, dict), (dict,)


def test_isinstance_of_a_value_joined_from_branches_is_decided_by_its_type() -> None:
    """Numba refuses `isinstance` of a variable bound on several paths (vmap's truth of a
    loop's state, `batch_rules.as_mask`): lowered as an overload that answers by the
    type the paths share; a name bound once stays Numba's `isinstance` (which prunes
    the branch it rules out); `dict` is left out (no dict is lowered)."""
    source = inspect.getsource(_flag_at)
    tree, _ = native.lower_source(source, {"_CONTAINERS": _CONTAINERS, "_DICTS": _DICTS})
    lowered = ast.unparse(tree)
    assert "_nt_is_sequence(v)" in lowered and "isinstance(a, (tuple, list))" in lowered
    assert "False)" in lowered and "dict" not in lowered
    import numba

    namespace: dict[str, Any] = {**native.overloads()}
    native._register_overloads()
    exec(compile(tree, "<lowered>", "exec"), namespace)  # noqa: S102
    compiled = numba.njit(namespace["_flag_at"])
    x, y, t, u = np.arange(3.0), np.ones(3), (1.0, 2.0), (3.0, 4.0)
    for c in (True, False):
        assert compiled(x, y, c) == _flag_at(x, y, c) == (False, False, False)
        assert compiled(t, u, c) == _flag_at(t, u, c) == (True, True, False)
