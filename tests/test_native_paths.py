"""A native result's NumPy scalar types by the `return` the call took (`native_paths`):
where a program returns an `np.float64` from one place and a float from another (an
`np.bool_` and a bool, an `np.int64` and an int), each call's result has the Python
backend's type for that place, whichever place the first call took, in this process and
in a second one that starts from the cache."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("numba")

import tapeless as tl  # noqa: E402
from tapeless.backend import native  # noqa: E402
from tapeless.backend.native_cache import StartedFunction  # noqa: E402
from tapeless.backend.native_paths import SUFFIX, add_path_entry, own_returns  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPELESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("TAPELESS_NATIVE_SPEED_CHECK", "0")


def sum_or_float(x, c):
    return np.sum(x) if c > 0 else 1.0


def npbool_or_bool(x, c):
    return np.logical_not(x) if c > 0 else x > 1.0


def npint_or_int(n, c):
    if c > 0:
        return np.sum(n), c
    return 3, c


def one_return(x, c):
    return np.sum(x) * c


_PROGRAMS = [(sum_or_float, np.array([1.0, 2.0])), (npbool_or_bool, 1.5),
             (npint_or_int, np.array([1, 2]))]


def _same(out: Any, expected: Any) -> bool:
    if isinstance(expected, tuple):
        return isinstance(out, tuple) and len(out) == len(expected) and \
            all(_same(a, b) for a, b in zip(out, expected, strict=True))
    return type(out) is type(expected) and out == expected


@pytest.mark.parametrize("order", [(1, -1, 1, -1), (-1, 1, -1, 1)])
@pytest.mark.parametrize(("fn", "x"), _PROGRAMS, ids=[f.__name__ for f, _ in _PROGRAMS])
def test_result_types_follow_the_return_taken(fn: Any, x: Any, order: tuple) -> None:
    """Numba returns Python numbers; the types the Python backend gives are kept per
    `return`, learned at the first call through each (so `~result` is NumPy's `~` of an
    `np.bool_`, `result / 0.0` NumPy's division of an `np.float64`)."""
    python = tl.jit(fn)
    for _ in range(2):  # (the second, and both of the second order: from a record)
        j = tl.jit(fn, backend="native")
        for c in order:
            out, expected = j(x, c), python(x, c)
            assert _same(out, expected), (c, out, expected)
            assert _same(expected, fn(x, c))
        entry = j._get(j.bind((x, 1), {})).fn
        assert entry.is_native and entry.paths is not None
        # (one started from its record asks the program built in full on the other path)
        assert sorted(entry.paths) == [0, 1] or isinstance(entry, StartedFunction)


def test_a_single_return_is_called_as_it_is() -> None:
    """An entry that returns from one place keeps the first call's types (one place, one
    type), called without a copy."""
    j = tl.jit(one_return, backend="native")
    x = np.array([1.0, 2.0])
    for c in (1.0, -1.0):
        assert _same(j(x, c), one_return(x, c))
    entry = j._get(j.bind((x, 1.0), {})).fn
    assert entry.is_native and entry.paths is None
    assert not entry.native.py_func.__name__.endswith(SUFFIX)


def test_the_copy_numbers_its_own_returns() -> None:
    tree = ast.parse(textwrap.dedent("""
        def f(x, c):
            def inner(y):
                return y
            if c:
                return inner(x)
            elif x:
                return
            return x, c
    """))
    name = add_path_entry(tree, "f")
    assert name == "f" + SUFFIX and [n.name for n in tree.body] == ["f", name]
    copy = tree.body[1]
    assert isinstance(copy, ast.FunctionDef)
    assert [ast.unparse(r) for r in own_returns(copy)] == [
        "return (inner(x), 0)", "return (None, 1)", "return ((x, c), 2)"]
    first = tree.body[0]
    assert isinstance(first, ast.FunctionDef)  # (the entry is unchanged)
    assert [ast.unparse(r) for r in own_returns(first)] == [
        "return inner(x)", "return", "return (x, c)"]
    assert add_path_entry(ast.parse("def g(x):\n    return x\n"), "g") is None


_PROGRAM = '''
import numpy as np


def f(x, c):
    if c > 0:
        return np.sum(x)
    return 1.0
'''

_DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    import tapeless as tl
    import pathprog
    f = tl.jit(pathprog.f, backend="native")
    x = np.array([1.0, 2.0])
    outs = [f(x, int(c)) for c in sys.argv[2:]]
    entry = f._get(f.bind((x, 1), {})).fn
    print(repr(outs), type(entry).__name__, entry.is_native)
""")


def test_a_second_process_learns_a_return_no_call_took() -> None:
    """The record keeps the types of the `return`s the first process checked; a second
    process that starts from it and takes another `return` asks the program built in
    full, which checks that call against the Python backend."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        (path / "pathprog.py").write_text(_PROGRAM)
        env = dict(os.environ, TAPELESS_CACHE_DIR=str(path / "cache"),
                   PYTHONPATH=str(ROOT / "src"), TAPELESS_NATIVE_SPEED_CHECK="0")
        env.pop("NUMBA_CACHE_DIR", None)
        runs = [subprocess.run([sys.executable, "-c", _DRIVER, tmp, *calls], env=env,
                               capture_output=True, text=True)
                for calls in (["-1"], ["-1", "1", "-1"])]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr
    assert runs[0].stdout.split() == ["[1.0]", "NativeFunction", "True"]
    assert runs[1].stdout.split() == ["[1.0,", "np.float64(3.0),", "1.0]", "StartedFunction",
                                      "True"]
    assert native.type_spec(np.float64(3.0)) == "<f8"


def sum_or_none(x, c):
    if c > 0:
        return np.sum(x), None
    return float(c), None


@pytest.mark.parametrize("order", [(1, -1, 1, -1), (-1, 1, -1, 1)])
def test_a_path_whose_result_holds_none_is_recorded(order: tuple) -> None:
    """A `return` whose result holds None (None itself, or native code's stand-in for a
    zero or an unbound value) is recorded once its first call passed the check of its
    other places, as a path of other results is: the calls after it are not checked
    again."""
    python = tl.jit(sum_or_none)
    j = tl.jit(sum_or_none, backend="native")
    x = np.array([1.0, 2.0])
    for c in order:
        out, expected = j(x, c), python(x, c)
        assert _same(out, expected), (c, out, expected)
    entry = j._get(j.bind((x, 1), {})).fn
    assert entry.is_native and entry.paths is not None
    if isinstance(entry, StartedFunction):  # (the second order: started from its record)
        return
    assert sorted(entry.paths) == [0, 1]
    seen = []
    checked = entry._first_on_path
    entry._first_on_path = lambda *a: seen.append(a) or checked(*a)  # type: ignore[method-assign]
    for c in order:
        assert _same(j(x, c), python(x, c))
    assert not seen


def test_a_none_place_is_learned_only_where_python_gives_none_or_zeros() -> None:
    """Native code's None stands for None, a zero or an unbound value: a path whose
    native result holds None where the Python backend's holds a nonzero number or array
    is not recorded (a later call on it, with a value there, is checked again)."""
    from tapeless import runtime
    from tapeless.backend.native import _without_nones

    for expected in (None, 0.0, np.zeros(3), runtime.ZERO, (None, np.zeros(2))):
        assert _without_nones((1.0, expected), (1.0, None))[1], expected
    for expected in (2.0, np.array([0.0, 1.0]), (None, np.ones(2))):
        assert not _without_nones((1.0, expected), (1.0, None))[1], expected
