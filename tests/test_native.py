"""The native backend (Numba) gives the Python backend's results, or runs on the Python
backend and says why.

By default a sixth of the differential corpus (every sixth program) and of the
gradient corpus run here (Numba's compile is slow); `pytest -m slow` runs all of both.
"""

from __future__ import annotations

import ast
import contextlib
import io
import math
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("numba")

from corpus.programs import CASES  # noqa: E402
from research_programs import det_laplace  # noqa: E402
from test_corpus import assert_same, run  # noqa: E402
from test_grad import CORPUS, CORPUS_SKIP  # noqa: E402

import tapeless as tl  # noqa: E402
from tapeless.backend import native  # noqa: E402

ROOT = Path(__file__).parent.parent


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Native modules go to a cache directory of the test session's own; native code runs
    even where it is no faster (so that its results are what is compared)."""
    monkeypatch.setenv("TAPELESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("TAPELESS_NATIVE_SPEED_CHECK", "0")


def _every(items: list, k: int) -> list:
    """Every k-th item in CI; all of them as `slow` tests."""
    return [p if i % k == 0 else pytest.param(*p.values, id=p.id, marks=pytest.mark.slow)
            for i, p in enumerate(items)]


def _quiet() -> Any:
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(np.errstate(all="ignore"))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


# --- the differential corpus --------------------------------------------------------------

DIFF = [pytest.param(fn, args, id=f"{name}-{i}")
        for name, fn, arg_sets in CASES for i, args in enumerate(arg_sets)]


@pytest.mark.parametrize(("fn", "args"), _every(DIFF, 6))
def test_corpus_same_as_python_backend(fn: Any, args: Any) -> None:
    with _quiet():
        kind, expected = run(tl.jit(fn), args)
        kind_native, actual = run(tl.jit(fn, backend="native"), args)
    assert kind_native == kind, f"python: {kind} {expected!r}, native: {kind_native} {actual!r}"
    if kind == "raised":
        assert actual is expected
    else:
        assert_same(expected, actual)


# --- the gradient corpus ---------------------------------------------------------------------


def _derivatives(fn: Any, args: tuple, argnums: tuple[int, ...], backend: str) -> Any:
    with _quiet():
        result = fn(*args)
        if isinstance(result, (float, np.floating)):
            return tl.value_and_grad(fn, argnums, backend=backend)(*args)
        rng = np.random.default_rng(0)
        from gradcheck import random_cotangent

        out, vjp_fn = tl.vjp(fn, *args, backend=backend)
        return out, vjp_fn(random_cotangent(rng, result))


@pytest.mark.parametrize(("name", "k", "fn", "args", "argnums"), _every(CORPUS, 6))
def test_gradients_same_as_python_backend(name: str, k: int, fn: Any, args: tuple,
                                          argnums: tuple[int, ...]) -> None:
    if (name, k) in CORPUS_SKIP:
        pytest.skip(CORPUS_SKIP[(name, k)])
    expected = _derivatives(fn, args, argnums, "python")
    actual = _derivatives(fn, args, argnums, "native")
    assert_same(expected, actual)


# --- what runs natively ----------------------------------------------------------------------


def scalar_loop(x):
    for _ in range(1000):
        x = math.sin(x) * 1.01
    return x


def rk4_vector(y, h):
    for _ in range(20):
        k1 = -y * y
        k2 = -(y + 0.5 * h * k1) ** 2
        k3 = -(y + 0.5 * h * k2) ** 2
        k4 = -(y + h * k3) ** 2
        y = y + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return np.sum(y * y)


def _entry(transformed: Any, *args: Any) -> native.NativeFunction:
    entry = transformed._get(transformed.bind(args, {})).fn
    assert isinstance(entry, native.NativeFunction)
    return entry


@pytest.mark.parametrize("make", [tl.jit, tl.grad, tl.value_and_grad])
def test_scalar_loop_is_native(make: Any) -> None:
    f = make(scalar_loop, backend="native")
    assert_same(make(scalar_loop)(0.5), f(0.5))
    assert _entry(f, 0.5).is_native
    assert_same(make(scalar_loop)(0.25), f(0.25))


def test_loop_over_vectors_is_native() -> None:
    y = np.linspace(0.1, 1.0, 5)
    f = tl.value_and_grad(rk4_vector, backend="native")
    assert_same(tl.value_and_grad(rk4_vector)(y, 0.05), f(y, 0.05))
    assert _entry(f, y, 0.05).is_native


def test_vjp_native() -> None:
    def f(x, y):
        s = x * 0.0
        for i in range(3):
            s = s + np.sin(x * y) * i
        return s

    x = np.arange(3.0)
    out, vjp_fn = tl.vjp(f, x, 0.7, backend="native")
    out_py, vjp_py = tl.vjp(f, x, 0.7)
    assert_same(out_py, out)
    assert_same(vjp_py(np.ones(3)), vjp_fn(np.ones(3)))


def test_default_backend_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tl.config.backend == "python"
    monkeypatch.setattr(tl.config, "backend", "native")
    assert tl.jit(scalar_loop).backend == "native"
    assert tl.grad(scalar_loop, backend="python").backend == "python"
    with pytest.raises(tl.TapelessError, match="unknown backend"):
        tl.jit(scalar_loop, backend="llvm")


def test_environment_variable_sets_default() -> None:
    code = "import tapeless as tl; print(tl.config.backend, tl.jit(abs).backend)"
    env = dict(os.environ, TAPELESS_BACKEND="native", PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == ["native", "native"]


# --- CPython's semantics where Numba's differ ---------------------------------------------------


def log_of(x):
    return math.log(x) + 1.0


def int_power(n, k):
    return n ** k


def float_power(x, y):
    return x ** y


def test_math_domain_error_raises_like_cpython() -> None:
    f = tl.jit(log_of, backend="native")
    assert f(2.0) == log_of(2.0)
    with pytest.raises(ValueError, match="math domain error"):
        f(-1.0)
    assert _entry(f, 2.0).is_native


def test_powers_like_cpython() -> None:
    f = tl.jit(int_power, backend="native")
    assert f(3, 4) == 81 and type(f(3, 4)) is int
    assert f(2, -1) == 0.5  # (a float, as in CPython; Numba's int power gives 0)
    assert f(3, 50) == 3 ** 50  # (beyond 64 bits: CPython's big int)
    g = tl.jit(float_power, backend="native")
    assert g(-8.0, 1 / 3) == (-8.0) ** (1 / 3)  # (a complex number)
    with pytest.raises(ZeroDivisionError):
        g(0.0, -1.0)


# --- fallback ---------------------------------------------------------------------------------


def prints(x):
    print("x is", x)
    return x * 2.0


def uses_dict(x):
    d = {"a": x, "b": 2.0 * x}
    return d["a"] * d["b"]


def test_fallback_print_is_located() -> None:
    f = tl.jit(prints, backend="native")
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert f(1.5) == 3.0
    assert out.getvalue() == "x is 1.5\n"
    entry = _entry(f, 1.5)
    assert not entry.is_native and entry.fallback is not None
    assert "print" in entry.fallback.reason
    assert entry.fallback.where is not None
    assert entry.fallback.where.filename == __file__
    assert entry.fallback.where.line == prints.__code__.co_firstlineno + 1
    assert f"{__file__}:{prints.__code__.co_firstlineno + 1}" in str(entry.fallback)


def test_fallback_dict() -> None:
    f = tl.jit(uses_dict, backend="native")
    assert f(3.0) == uses_dict(3.0)
    entry = _entry(f, 3.0)
    assert entry.fallback is not None and "dict" in entry.fallback.reason


def not_or(a, b):
    return not a or b, a and b


def int_or_float(x):
    return 1 if x > 0 else 2.5


def compares_and_numbers(x, y):
    both = x > 0 and y > 0
    either = x > 0 or both
    return both, either, x if x > y else y, (2 if x > 0 else -3)


@pytest.mark.parametrize("order", [((1, 2), (0, 2), (0, 0)), ((0, 0), (1, 0), (0, 5))])
def test_value_that_is_a_bool_on_one_path_runs_on_python(order: Any) -> None:
    """`not a or b` is True or b: Numba would give it one type (int64) and return 1 for
    True on calls after the first (the first call's check compares one result)."""
    for args in order:
        f = tl.jit(not_or, backend="native")
        got = f(*args)
        assert got == not_or(*args)
        assert [type(v) for v in got] == [type(v) for v in not_or(*args)]
    entry = _entry(f, *order[-1])
    assert not entry.is_native and entry.fallback is not None
    assert "bool on one path" in entry.fallback.reason
    assert entry.fallback.where is not None
    assert entry.fallback.where.line == not_or.__code__.co_firstlineno + 1


def test_value_that_is_an_int_on_one_path_and_a_float_on_another() -> None:
    for x in (1.0, -1.0):
        f = tl.jit(int_or_float, backend="native")
        got = f(x)
        assert got == int_or_float(x) and type(got) is type(int_or_float(x))
    entry = _entry(f, -1.0)
    assert entry.fallback is not None and "int on one path" in entry.fallback.reason


def test_comparisons_and_numbers_of_one_type_per_value_stay_native() -> None:
    f = tl.jit(compares_and_numbers, backend="native")
    for args in ((1.0, 2.0), (-1.0, 2.0), (3.0, -1.0)):
        got = f(*args)
        assert got == compares_and_numbers(*args)
        assert [type(v) for v in got] == [type(v) for v in compares_and_numbers(*args)]
    assert _entry(f, 1.0, 2.0).is_native


def test_fallback_when_numba_cannot_type() -> None:
    def shapes(x):
        return np.einsum("i,i->", x, x)

    f = tl.jit(shapes, backend="native")
    assert f(np.arange(3.0)) == 5.0
    entry = _entry(f, np.arange(3.0))
    assert entry.fallback is not None and "Numba cannot type it" in entry.fallback.reason


def test_fallback_when_no_faster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPELESS_NATIVE_SPEED_CHECK", "1")
    timings = iter([(1e-6, 2.0 * 1.5), (5e-6, None)])  # (the Python call, then native)
    real = native._timed
    monkeypatch.setattr(native, "_timed",
                        lambda fn, args: (next(timings)[0], real(fn, args)[1]))

    def double(x):
        return 2.0 * x

    f = tl.jit(double, backend="native")
    assert f(1.5) == 3.0
    entry = _entry(f, 1.5)
    assert entry.fallback is not None and "no faster" in entry.fallback.reason
    where = entry.fallback.where  # (no line of its own: the function's)
    assert where is not None and (where.filename, where.line) == \
        (__file__, double.__code__.co_firstlineno)
    assert f(2.5) == 5.0


def loop_with_unbound(n):
    for i in range(n):
        last = i * 2.0
    return last


def test_unbound_variable_as_the_python_backend() -> None:
    f = tl.jit(loop_with_unbound, backend="native")
    assert f(3) == 4.0
    for g in (f, tl.jit(loop_with_unbound)):  # (as CPython)
        with pytest.raises(UnboundLocalError, match="'last' is used before it is assigned"):
            g(0)


def test_show_native_lists_fallbacks(tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""
        import math

        def loop(x):
            for _ in range(10):
                x = math.sin(x)
            return x

        def noisy(x):
            print(x)
            return x
    """))
    from tapeless.cli import main

    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(["show", f"{script}:loop", "--grad", "--backend", "native",
                     "--args", "0.5"]) == 0
    assert "runs natively" in out.getvalue()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(["show", f"{script}:noisy", "--backend", "native"]) == 0
    text = out.getvalue()
    assert f"{script}:10" in text and "print" in text


# --- the cache ---------------------------------------------------------------------------------


def test_cache_is_reused_by_a_second_process(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import tapeless as tl
        import numba
        from test_native import scalar_loop
        f = tl.grad(scalar_loop, backend="native")
        print(repr(f(0.5)), f._get((0.5,)).fn.is_native)
    """)
    env = dict(os.environ, TAPELESS_CACHE_DIR=str(tmp_path), PYTHONPATH=str(ROOT / "src"))
    env.pop("NUMBA_CACHE_DIR", None)
    def run_once() -> str:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        assert out[1] == "True", "the gradient did not run natively"
        return out[0]

    first = run_once()
    written = sorted(p.name for p in (tmp_path / "native").iterdir())
    assert any(n.startswith("grad_scalar_loop") and n.endswith(".py") for n in written)
    assert any(p.suffix == ".nbi" for p in (tmp_path / "native" / "__pycache__").iterdir())
    # (Whether the second process compiled nothing is asserted from Numba's counts in
    # test_second_process_starts_from_the_cache: a time comparison fails under load.)
    second = run_once()
    assert second == first


def sum_over_rows(x, state):
    """Differentiated in x only: the comprehension pairs each row with its backpropagator
    (a compiled function), which the gradient never calls."""
    rows = [state[i] for i in range(state.shape[0])]
    total = 0.0
    for r in rows:
        total = total + np.sum(r * x)
    return total


def test_uncalled_function_value_is_cached(tmp_path: Path) -> None:
    """Numba does not cache code that uses a compiled function as a value: a function the
    gradient makes but never calls is dropped, and a second process loads the gradient
    from Numba's cache (the LSTM's gradient has this shape)."""
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import numpy as np
        import tapeless as tl
        from test_native import sum_over_rows
        args = (np.array([0.5, -1.5, 2.0]), np.arange(6.0).reshape(2, 3))
        f = tl.value_and_grad(sum_over_rows, 0, backend="native")
        value, grad = f(*args)
        entry = f._get(args).fn
        stats = entry.native.stats
        print(repr(value), list(grad), entry.is_native,
              sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
    """)
    env = dict(os.environ, TAPELESS_CACHE_DIR=str(tmp_path), PYTHONPATH=str(ROOT / "src"))
    env.pop("NUMBA_CACHE_DIR", None)
    expected = tl.value_and_grad(sum_over_rows, 0)(np.array([0.5, -1.5, 2.0]),
                                                    np.arange(6.0).reshape(2, 3))
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout
        runs.append(out.split())
        assert out.split()[:-3] == [repr(expected[0]), *str(list(expected[1])).split()]
        assert out.split()[-3] == "True", "the gradient did not run natively"
    assert runs[0][-2:] == ["0", "1"]  # (compiled, and written to the cache)
    assert runs[1][-2:] == ["1", "0"]  # (loaded from the cache: no compile)


def test_called_function_value_is_kept() -> None:
    """Only a function that cannot be called is dropped: where the module calls through a
    value (`p[1](x)`), every function value stays."""
    uncalled = textwrap.dedent("""
        def f(x, xs):
            _sum = np.sum
            def g(i):
                return (xs[i], B)
            p = [g(i) for i in range(len(xs))]
            return _sum(x * first(p[0]))
        def first(p):
            return p[0]
        def B(d):
            return d
    """)
    tree = ast.parse(uncalled)
    assert native.drop_uncalled_functions(tree) == 1
    assert "(xs[i], None)" in ast.unparse(tree)
    called = uncalled.replace("x * first(p[0])", "p[0][1](x)")
    tree = ast.parse(called)
    assert native.drop_uncalled_functions(tree) == 0
    assert "(xs[i], B)" in ast.unparse(tree)
    aliased = uncalled.replace("_sum = np.sum", "_sum = p_1 = g")
    assert native.drop_uncalled_functions(ast.parse(aliased)) == 0


def list_sum(xs, i):
    if i == len(xs):
        return 0.0
    return xs[i] * xs[i] + list_sum(xs, i + 1)


_RECURSION_DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    import tapeless as tl
    import tapeless.api
    from tapeless.backend import native
    from tapeless.backend.native_cache import StartedFunction
    from research_programs import det_laplace
    from test_native import list_sum
    if sys.argv[2] == "started":  # (no native program may be built: each starts from a record)
        load = tapeless.api.load
        def refused(graph, kinds=(), backend="python"):
            assert backend != "native", "built, not started from the cache"
            return load(graph, kinds, backend)
        tapeless.api.load = refused
    if sys.argv[2] == "failing":  # (compiling for explicit signatures fails)
        def broken(entry, args, out):
            raise RuntimeError("no")
        native._cache_recursion = broken
    A = np.random.default_rng(6).standard_normal((4, 4))
    for fn, args in ((det_laplace, (A,)), (list_sum, ([0.5, 1.5, -2.0], 0))):
        f = tl.jit(fn, backend="native")
        out = f(*args)
        entry = f._get(args).fn
        print(repr(out), "|", repr(tl.jit(fn)(*args)), "|", type(entry) is StartedFunction,
              entry.is_native, sum(entry.native.stats.cache_misses.values()),
              entry.native is not None and entry.module is not None and entry.module.cached)
""")


def _recursion_runs(tmp_path: Path, mode: str) -> list[list[str]]:
    env = dict(os.environ, TAPELESS_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(ROOT / "src"), TAPELESS_NATIVE_SPEED_CHECK="0")
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", _RECURSION_DRIVER, str(Path(__file__).parent),
                          mode], env=env, capture_output=True, text=True)
    assert out.returncode == 0, (out.returncode, out.stderr)  # (-11: Numba's crash)
    return [line.split(" | ") for line in out.stdout.splitlines()]


def test_recursion_starts_from_the_cache(tmp_path: Path) -> None:
    """A recursive program (the determinant's recursion passes a literal `0` first and an
    `int64` after it, which Numba links as its code loads: numba#6061, a crash loading
    it from the cache) is compiled again for explicit signatures after its first call
    and cached: a second process runs it from its record, nothing built or compiled, no
    crash, and the results are the first process's (the Python backend's, within
    1e-12)."""
    first = _recursion_runs(tmp_path, "cold")
    assert [r[2] for r in first] == ["False True 1 True"] * 2  # (switched to cached code)
    assert len(list((tmp_path / "cache" / "native" / "start").glob("*.json"))) == 2
    for mode in ("started", "started"):  # (twice: loading writes nothing that crashes)
        second = _recursion_runs(tmp_path, mode)
        assert [r[2] for r in second] == ["True True 0 False"] * 2
        assert [r[0] for r in second] == [r[0] for r in first]  # (identical results)
    for out, expected, _ in first:
        a, b = (eval(v, {"np": np}) for v in (out, expected))  # noqa: S307
        assert type(a) is type(b) and a == pytest.approx(b, rel=1e-12, abs=0)
    assert eval(first[1][0]) == 0.25 + 2.25 + 4.0  # noqa: S307


def test_recursion_not_cached_where_explicit_compile_fails(tmp_path: Path) -> None:
    """Where compiling a recursive module for explicit signatures fails, the program runs
    as before: native, not cached, no start record; a second process builds it again."""
    for _ in range(2):
        runs = _recursion_runs(tmp_path, "failing")
        assert [r[2] for r in runs] == ["False True 1 False"] * 2
        for out, expected, _ in runs:
            a, b = (eval(v, {"np": np}) for v in (out, expected))  # noqa: S307
            assert type(a) is type(b) and a == pytest.approx(b, rel=1e-12, abs=0)
    assert not list((tmp_path / "cache" / "native" / "start").glob("*.json"))
    assert not list((tmp_path / "cache").rglob("*.nbi"))


def test_mutual_recursion_is_not_cached() -> None:
    """Code that links a call as it loads (mutual recursion: each function calls the
    other's code through a symbol Numba resolves at load) is found, and not cached."""
    import numba

    source = textwrap.dedent("""
        def even(n):
            return True if n == 0 else odd(n - 1)
        def odd(n):
            return False if n == 0 else even(n - 1)
    """)
    space: dict[str, Any] = {}
    exec(compile(source, "<mutual>", "exec"), space)  # noqa: S102
    for name in ("even", "odd"):
        space[name] = numba.njit(space[name])
    assert space["even"](6) is True
    assert native._unresolved(space["even"]) or native._unresolved(space["odd"])
    single = numba.njit(lambda n: n + 1)
    single(1)
    assert not native._unresolved(single)


_START_PROGRAM = """
import math
import os

import numpy as np

SCALE = float(os.environ.get("START_SCALE", "1.01"))


def helper(x, w):
    return math.sin(x) * SCALE + np.sum(w * w) * 1e-3


def f(x, w, n):
    for i in range(n):
        x = helper(x, w) + 1e-9 * i
    return x
"""

_START_DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    import tapeless as tl
    import tapeless.api
    from tapeless.backend.native_cache import StartedFunction
    import startprog
    if sys.argv[2] == "started":  # (no native program may be built: each starts from a record)
        load = tapeless.api.load
        def refused(graph, kinds=(), backend="python"):
            assert backend != "native", "built, not started from the cache"
            return load(graph, kinds, backend)
        tapeless.api.load = refused
    args = (0.5, np.array([0.25, -1.0]), 50)
    for make in (lambda: tl.jit(startprog.f, backend="native"),
                 lambda: tl.value_and_grad(startprog.f, (0, 1), backend="native")):
        fn = make()
        out = fn(*args)
        expected = make().__class__(startprog.f, *([] if fn.kind == "jit" else
                                    [(0, 1), False, True]), backend="python")(*args)
        entry = fn._get(args).fn
        print(repr(out), "|", repr(expected), "|", type(entry) is StartedFunction,
              entry.is_native, sum(entry.native.stats.cache_misses.values()))
""")


def _start_runs(tmp_path: Path, mode: str, scale: str = "1.01") -> list[list[str]]:
    env = dict(os.environ, TAPELESS_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(ROOT / "src"), START_SCALE=scale,
               TAPELESS_NATIVE_SPEED_CHECK="0")
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", _START_DRIVER, str(tmp_path), mode], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return [line.split(" | ") for line in out.stdout.splitlines()]


def _records(tmp_path: Path) -> set[str]:
    return {p.name for p in (tmp_path / "cache" / "native" / "start").glob("*.json")}


def test_second_process_starts_from_the_cache(tmp_path: Path) -> None:
    """A second process runs the native objective and gradient from their records: nothing
    parsed, differentiated, optimized or generated (the build is refused there), and the
    results are the first process's (equal to the Python backend's)."""
    (tmp_path / "startprog.py").write_text(_START_PROGRAM)
    first = _start_runs(tmp_path, "cold")
    assert [r[2] for r in first] == ["False True 1"] * 2
    assert len(_records(tmp_path)) == 2
    second = _start_runs(tmp_path, "started")
    assert [r[2] for r in second] == ["True True 0"] * 2  # (Numba's cache hit)
    assert [r[0] for r in second] == [r[0] for r in first]  # (identical results)
    for out, expected, _ in first + second:  # (the Python backend's, within 1e-12)
        a, b = (eval(v, {"array": np.array, "np": np}) for v in (out, expected))  # noqa: S307
        assert type(a) is type(b)
        np.testing.assert_allclose(np.hstack([np.ravel(v) for v in _leaves(a)]),
                                   np.hstack([np.ravel(v) for v in _leaves(b)]), rtol=1e-12)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def test_changed_function_does_not_start_from_a_stale_record(tmp_path: Path) -> None:
    """A changed source (of a function the program calls) or a global's changed value
    gives another start key: the program is built again, with the new result."""
    (tmp_path / "startprog.py").write_text(_START_PROGRAM)
    first = _start_runs(tmp_path, "cold")
    records = _records(tmp_path)
    # A global's value changed (the same source):
    changed = _start_runs(tmp_path, "cold", scale="1.02")
    assert [r[2] for r in changed] == ["False True 1"] * 2
    assert [r[0] for r in changed] != [r[0] for r in first]
    assert len(_records(tmp_path)) == 4 and records < _records(tmp_path)
    # The helper's source changed:
    (tmp_path / "startprog.py").write_text(_START_PROGRAM.replace("1e-3", "2e-3"))
    edited = _start_runs(tmp_path, "cold")
    assert [r[2] for r in edited] == ["False True 1"] * 2
    assert [r[0] for r in edited] != [r[0] for r in first]
    assert len(_records(tmp_path)) == 6


def test_started_program_follows_a_rebound_global(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                  ) -> None:
    """A program started from the cache is guarded like a built one: a global rebound
    after the start is read again."""
    (tmp_path / "startprog.py").write_text(_START_PROGRAM)
    monkeypatch.setenv("TAPELESS_CACHE_DIR", str(tmp_path / "cache"))
    _start_runs(tmp_path, "cold")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("startprog", None)
    import startprog  # type: ignore[import-not-found]

    from tapeless.backend.native_cache import StartedFunction

    args = (0.5, np.array([0.25, -1.0]), 50)
    fn = tl.jit(startprog.f, backend="native")
    fn(*args)
    assert type(fn._get(args).fn) is StartedFunction
    monkeypatch.setattr(startprog, "SCALE", 0.5)
    assert_same(fn(*args), tl.jit(startprog.f)(*args))
    assert type(fn._get(args).fn) is not StartedFunction
    sys.modules.pop("startprog", None)


def test_start_record_is_loaded_only_as_written(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A record is read only where its key, its module file (in the cache directory) and
    that file's hash are the ones written: one edited is ignored, and nothing starts."""
    import json

    from tapeless.backend import native_cache

    (tmp_path / "startprog.py").write_text(_START_PROGRAM)
    _start_runs(tmp_path, "cold")
    monkeypatch.setenv("TAPELESS_CACHE_DIR", str(tmp_path / "cache"))
    path = sorted((tmp_path / "cache" / "native" / "start").glob("*.json"))[0]
    key, text = path.stem, path.read_text()

    def never() -> Any:
        raise AssertionError("not called when the record is loaded")

    assert native_cache.load(key, never) is not None
    record = json.loads(text)
    outside = tmp_path / "elsewhere.py"
    outside.write_bytes(Path(record["file"]).read_bytes())
    for edit in ({"key": "0" * 64}, {"file": str(outside)}, {"file_hash": "0" * 64}):
        path.write_text(json.dumps({**record, **edit}))
        assert native_cache.load(key, never) is None, edit
    path.write_text(text)
    module = Path(record["file"])
    module.write_text(module.read_text() + "# edited\n")
    assert native_cache.load(key, never) is None


_FALLBACK_DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import tapeless as tl
    from tapeless.backend import native
    import fallbackprog
    if sys.argv[2] == "started":  # (Numba is not tried again: nothing is lowered)
        def refused(compiled):
            raise AssertionError("lowered again")
        native.compile_native = refused
    fn = tl.jit(fallbackprog.as_dict, backend="native")
    print(fn(1.25) == tl.jit(fallbackprog.as_dict)(1.25), fn._get((1.25,)).fn.fallback)
""")


def test_fallback_is_remembered_across_processes(tmp_path: Path) -> None:
    """A program that fell back writes its reason: a second process runs it on the
    Python backend without lowering it or calling Numba, and says why as the first did."""
    (tmp_path / "fallbackprog.py").write_text(
        "def as_dict(x):\n    return {'twice': x * 2.0}\n")
    env = dict(os.environ, TAPELESS_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(ROOT / "src"))
    env.pop("NUMBA_CACHE_DIR", None)
    outs = []
    for mode in ("cold", "started"):
        out = subprocess.run([sys.executable, "-c", _FALLBACK_DRIVER, str(tmp_path), mode],
                             env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        outs.append(out.stdout.strip())
    assert outs[0] == outs[1]
    assert outs[0].startswith("True ") and "fallbackprog.py:2" in outs[0] and "dict" in outs[0]


# --- forward mode and the transforms built on it ---------------------------------------------


def test_forward_transforms_native() -> None:
    y = np.linspace(0.1, 1.0, 4)
    out, t = tl.jvp(rk4_vector, (y, 0.05), (np.ones(4), 0.0), backend="native")
    assert_same(tl.jvp(rk4_vector, (y, 0.05), (np.ones(4), 0.0)), (out, t))
    assert _entry(tl.fwd_api._jvp_function(rk4_vector, "native"), y, 0.05, np.ones(4),
                  0.0).is_native
    for transform in (tl.jacfwd, tl.jacrev, tl.hessian):
        assert_same(transform(rk4_vector)(y, 0.05),
                    transform(rk4_vector, backend="native")(y, 0.05))
    out, f_jvp = tl.linearize(scalar_loop, 0.5, backend="native")
    assert_same(tl.linearize(scalar_loop, 0.5)[1](1.0), f_jvp(1.0))


def noisy_sum(x, rng):
    s = 0.0
    for _ in range(3):
        s = s + x * rng.normal()
    return s


def test_random_generator_draws_once() -> None:
    f = tl.jit(noisy_sum, backend="native")
    mine, theirs = np.random.default_rng(0), np.random.default_rng(0)
    for _ in range(2):
        assert f(1.0, mine) == noisy_sum(1.0, theirs)
    entry = _entry(f, 1.0, mine)
    assert not entry.is_native and entry.fallback is not None


# --- random programs -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [pytest.param(s, marks=[pytest.mark.slow] if s >= 8 else [])
                                  for s in range(40)])
def test_random_programs_same_as_python_backend(seed: int, tmp_path: Path) -> None:
    """test_random_programs.py's larger programs (the same seeds), without draws."""
    import random

    from test_random_programs import (
        RandomChoices,
        generate_program,
        load_program,
        outcome,
        same_value,
    )

    rng = random.Random(1000 + seed)
    program = generate_program(RandomChoices(seed), size=30)
    args = [(rng.uniform(-4, 4), rng.choice([0.0, rng.uniform(-4, 4)]), rng.randint(-3, 8))
            for _ in range(5)]
    fn = getattr(load_program(program, tmp_path), program.entry)
    python, compiled = tl.jit(fn), tl.jit(fn, backend="native")
    for a in args:
        expected, got = outcome(python, a), outcome(compiled, a)
        assert expected[0] == got[0] and (expected[1] is got[1] if expected[0] == "raised"
                                          else same_value(expected[1], got[1])), \
            f"f{a}: python backend {expected}, native {got}\n{program.source}"


def index_past_the_end(xs, n):
    total = 0.0
    for i in range(n):
        total = total + xs[i]
    return total


def test_index_out_of_range_raises_like_cpython() -> None:
    f = tl.jit(index_past_the_end, backend="native")
    xs = np.arange(4.0)
    assert f(xs, 4) == 6.0
    with pytest.raises(IndexError):
        f(xs, 5)
    assert _entry(f, xs, 4).is_native


def zeros_of_python_types(n):
    a = np.zeros(n, float)
    for i in range(n):
        a = a + i
    return a.astype(int), np.ones(n, dtype=bool)


def test_python_types_as_dtypes() -> None:
    f = tl.jit(zeros_of_python_types, backend="native")
    assert_same(tl.jit(zeros_of_python_types)(3), f(3))
    assert _entry(f, 3).is_native


# --- loops inside loops (backend/native_loops.py) ------------------------------------------


def horner_least_squares(c, xs, ys):
    """A loop over coefficients inside a loop over points: the inner loop's derivative
    keeps a linked stack, and the inner backward loop sums element sensitivities of c."""
    total = 0.0
    for i in range(xs.shape[0]):
        x = xs[i]
        p = 0.0
        for j in range(c.shape[0]):
            p = p * x + c[j]
        r = p - ys[i]
        total = total + r * r
    return total


def test_loop_inside_loop_gradient_is_native() -> None:
    rng = np.random.default_rng(3)
    c, xs, ys = rng.standard_normal(4), rng.uniform(-1, 1, 5), rng.standard_normal(5)
    f = tl.value_and_grad(horner_least_squares, backend="native")
    value, grad = f(c, xs, ys)
    assert_same(tl.value_and_grad(horner_least_squares)(c, xs, ys), (value, grad))
    # (against the gradient by hand: d/dc_j of sum_i r_i^2 is sum_i 2 r_i x_i^(m-1-j))
    powers = xs[:, None] ** np.arange(len(c) - 1, -1, -1)[None, :]
    r = powers @ c - ys
    np.testing.assert_allclose(grad, 2.0 * r @ powers, rtol=1e-12)
    assert _entry(f, c, xs, ys).is_native
    source = native.native_source(f._get(f.bind((c, xs, ys), {})))
    # (The inner loop saves its count, no stack of its indices (opt/counters.py); the
    # sensitivities of c summed into one array in place, by the optimizer's accumulator
    # or native_loops' own.)
    assert "_nt_items" not in source and "_nt_list" not in source, source
    assert "_nt_scatter_into" in source or "_scatter_add" in source


def test_inner_sum_adds_into_the_outer_one() -> None:
    """The inner backward loop's sum of c's sensitivities goes straight into the outer
    accumulator (`lower_nested_sums`), which starts as c's zeros: no array per point.
    The same gradient as the Python backend's and the formula's, also where the inner
    loop runs no turn (no coefficients) and for points that cancel."""
    rng = np.random.default_rng(8)
    for m, n in ((6, 40), (1, 3), (0, 3)):
        c, xs = rng.standard_normal(m), rng.uniform(-1, 1, n)
        ys = np.concatenate([rng.standard_normal(n - 1), [0.0]])
        f = tl.value_and_grad(horner_least_squares, backend="native")
        value, grad = f(c, xs, ys)
        assert_same(tl.value_and_grad(horner_least_squares)(c, xs, ys), (value, grad))
        powers = xs[:, None] ** np.arange(m - 1, -1, -1)[None, :]
        np.testing.assert_allclose(grad, 2.0 * (powers @ c - ys) @ powers, rtol=1e-12,
                                   atol=1e-300)
        assert _entry(f, c, xs, ys).is_native
    source = native.native_source(f._get(f.bind((c, xs, ys), {})))
    tree = ast.parse(source)
    # (`inner = outer` before the inner loop, `outer = inner` after it, and the outer
    # sum starts as c's zeros.)
    starts = {(a.targets[0].id, a.value.id) for a in ast.walk(tree)
              if isinstance(a, ast.Assign) and len(a.targets) == 1 and
              isinstance(a.targets[0], ast.Name) and isinstance(a.value, ast.Name)}
    assert any((b, a) in starts for a, b in starts), source
    assert "_nt_zeros_for(c)" in source and "_nt_add_into" not in source, source


def test_inner_sum_kept_where_the_outer_one_is_read() -> None:
    """`lower_nested_sums` leaves the sums alone where the outer accumulator is read
    while the loops run (the inner loop's in-place sum would change what was read)."""
    from tapeless.backend.native_loops import lower_nested_sums

    source = (
        "def f(c, n):\n"
        "    d = None\n"
        "    seen = []\n"
        "    for i in range(n):\n"
        "        e = None\n"
        "        for j in range(n):\n"
        "            e = _scatter_add(e, c, (j,), (1.0,))\n"
        "        d = _nt_add_into(d, e)\n"
        "        seen.append(d)\n"
        "    return d, seen\n")
    tree = ast.parse(source)
    assert lower_nested_sums(tree) == 0
    assert ast.unparse(tree) == ast.unparse(ast.parse(source))
    fused = ast.parse(source.replace("        seen.append(d)\n", ""))
    assert lower_nested_sums(fused) == 1
    assert "e = d" in ast.unparse(fused) and "d = e" in ast.unparse(fused)


def _tanh_step(x, w):
    return np.tanh(w * x) * 1.1


_checkpointed_step = tl.checkpoint(_tanh_step)


def checkpointed_steps(x, w):
    """Steps through a checkpointed function: the backward pass runs `J_` of it again
    and calls the backpropagator it returns at once."""
    for _ in range(5):
        x = _checkpointed_step(x, w)
    return np.sum(x * x)


def test_checkpointed_function_gradient_is_native() -> None:
    """`tl.checkpoint(f)`'s backpropagator is lambda-lifted (`lift_returned_closures`):
    `J_` returns its captures, the caller passes them to a function of the module."""
    x, w = np.linspace(0.1, 1.0, 4), np.linspace(-1.0, 1.0, 4)
    f = tl.value_and_grad(checkpointed_steps, (0, 1), backend="native")
    assert_same(tl.value_and_grad(checkpointed_steps, (0, 1))(x, w), f(x, w))
    assert _entry(f, x, w).is_native
    source = native.native_source(f._get(f.bind((x, w), {})))
    assert "__B_" in source and "_nt_captures" in source, source
    # (against central differences)
    h = 1e-6
    for k in range(4):
        e = np.zeros(4)
        e[k] = h
        fd = (checkpointed_steps(x + e, w) - checkpointed_steps(x - e, w)) / (2 * h)
        assert f(x, w)[1][0][k] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_lifting_leaves_closures_that_escape() -> None:
    """A backpropagator saved rather than called at once (the derivative of a recursion
    pushes the callees' onto its stack) is not lifted."""
    from tapeless.backend.native import lift_returned_closures

    source = (
        "def J(x):\n"
        "    y = x * x\n"
        "    def B(d, *, x=x):\n"
        "        return 2.0 * x * d\n"
        "    return y, B\n"
        "def f(x):\n"
        "    t = J(x)\n"
        "    keep = (t[1],)\n"
        "    return t[0], keep[0](1.0)\n")
    tree = ast.parse(source)
    assert lift_returned_closures(tree) == 0
    called = ast.parse(source.replace("    keep = (t[1],)\n    return t[0], keep[0](1.0)",
                                      "    return t[0], t[1](1.0)"))
    assert lift_returned_closures(called) == 1
    namespace: dict[str, Any] = {}
    exec(compile(ast.fix_missing_locations(called), "<lifted>", "exec"), namespace)  # noqa: S102
    assert namespace["f"](3.0) == (9.0, 6.0)


def test_loop_inside_loop_stack_read_twice() -> None:
    """A vjp function's backward loops read the stacks its forward loops saved, as often
    as it is called: the lists are read by index, not popped."""
    rng = np.random.default_rng(4)
    c, xs, ys = rng.standard_normal(3), rng.uniform(-1, 1, 4), rng.standard_normal(4)
    out, vjp_fn = tl.vjp(horner_least_squares, c, xs, ys, backend="native")
    out_py, vjp_py = tl.vjp(horner_least_squares, c, xs, ys)
    assert_same(out_py, out)
    for seed in (1.0, -2.5):
        assert_same(vjp_py(seed), vjp_fn(seed))


def tanh_chain_loops(w, xs):
    """Array sensitivities summed across a loop inside a loop (`_nt_add_into`)."""
    total = 0.0
    for i in range(xs.shape[0]):
        h = xs[i]
        for _ in range(3):
            h = np.tanh(w * h)
        total = total + np.sum(h)
    return total


def test_array_sums_inside_loops_are_native() -> None:
    rng = np.random.default_rng(5)
    w, xs = rng.standard_normal(3), rng.standard_normal((2, 3))
    f = tl.value_and_grad(tanh_chain_loops, backend="native")
    assert_same(tl.value_and_grad(tanh_chain_loops)(w, xs), f(w, xs))
    assert _entry(f, w, xs).is_native


def doubled_list(x):
    """A list grown by concatenation in a loop, from an empty list."""
    out = []
    for i in range(x.shape[0]):
        out = out + [x[i] * 2.0, x[i] + 1.0]
    total = 0.0
    for v in out:
        total = total + v * v
    return total


def test_list_grown_in_a_loop_is_native() -> None:
    x = np.array([0.5, -1.25, 2.0])
    f = tl.jit(doubled_list, backend="native")
    assert_same(doubled_list(x), f(x))
    assert _entry(f, x).is_native




def test_recursive_determinant_is_native() -> None:
    A = np.random.default_rng(6).standard_normal((4, 4))
    f = tl.jit(det_laplace, backend="native")
    assert_same(tl.jit(det_laplace)(A), f(A))
    assert f(A) == pytest.approx(np.linalg.det(A), rel=1e-12)
    assert _entry(f, A).is_native


def test_recursive_gradient_is_native() -> None:
    """The determinant's gradient: the recursion's lifted backpropagator records are
    typed lists of one record type per branch, referred to by index (`native_records`);
    the program runs natively, with the Python backend's results (1e-12), on 4x4 and 5x5
    matrices and on a call after another (fresh lists per call)."""
    from research_programs import walk_energy

    for n, seed in ((4, 7), (5, 8), (4, 9)):
        A = np.random.default_rng(seed).standard_normal((n, n))
        f = tl.grad(det_laplace, backend="native")
        assert_same(tl.grad(det_laplace)(A), f(A))
        np.testing.assert_allclose(f(A), np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-10)
        assert _entry(f, A).is_native
    A = np.random.default_rng(10).standard_normal((6, 6))
    g = tl.grad(walk_energy, backend="native")
    assert_same(tl.grad(walk_energy)(A), g(A))
    assert _entry(g, A).is_native


def test_recursive_records_are_typed_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the native backend compiles for the determinant's gradient: no closure; each
    branch of J_det_minor appends its record to its own list and returns an index; the
    lists are typed by an append that never runs; B_det_minor reads its record by index
    in a copy of its body per branch."""
    from tapeless.opt import unwind

    # (the records kept where the backward pass is not fused into the forward one:
    # by default it is, `unwind.fuse_native`, tests/test_recursion_fuse.py)
    monkeypatch.setattr(unwind, "FUSE_VALUES", False)
    A = np.random.default_rng(12).standard_normal((4, 4))
    f = tl.grad(det_laplace, backend="native")
    f(A)
    source = native.native_source(f._get(f.bind((A,), {})))
    tree = ast.parse(source)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert not [n for fn in functions.values() for n in ast.walk(fn)
                if isinstance(n, ast.FunctionDef) and n is not fn], source
    assert [a.arg for a in functions["J_det_minor"].args.args[-3:]] == [
        "_nt_records0_det_minor", "_nt_records1_det_minor", "_nt_arena_det_minor"]
    assert "_nt_records1_det_minor.append(" in ast.unparse(functions["J_det_minor"])
    assert "if _nt_never():" in ast.unparse(functions["grad_det_laplace"])
    assert "_nt_records0_det_minor[_nt_ref >> 1]" in ast.unparse(functions["B_det_minor"])


def test_recursive_vjp_called_twice() -> None:
    """A vjp of the determinant on the native backend: its records are made per call, so
    the function called again (another cotangent) gives the Python backend's values."""
    A = np.random.default_rng(13).standard_normal((4, 4))
    out, vjp_fn = tl.vjp(det_laplace, A, backend="native")
    out_py, vjp_py = tl.vjp(det_laplace, A)
    assert_same(out_py, out)
    for cotangent in (1.0, -2.5):
        assert_same(vjp_py(cotangent), vjp_fn(cotangent))


def test_lifted_records_of_another_shape_are_refused_at_the_recursion() -> None:
    """A lifted recursion whose records hold the callees' (B_f calls itself) but whose
    J_f does not end in one `if`/`else` and a return of the record is not kept in typed
    lists: the lowering refuses it at the recursive call, saying why, before Numba is
    asked (Numba would fail on a type that contains itself)."""
    source = textwrap.dedent("""\
        def grad_f(x):
            _t = J_f(x, 3)
            _t_1 = B_f(_t[1], 1.0)
            return _t_1[1]

        def B_f(record, dout):
            if record[0]:
                return (), dout
            _t_2 = B_f(record[1], dout * record[2])
            return (), _t_2[1] * record[3]

        def J_f(x, n):
            c = n == 0
            if c:
                return x, (c, 0, 0.0, 0.0)
            _t = J_f(x, n - 1)
            return _t[0] * x, (c, _t[1], x, _t[0])
        """)
    with pytest.raises(native._Refused) as refused:
        native.lower_source(source, {})
    assert refused.value.line == 16
    assert "contains itself" in refused.value.reason
    # (the shape the lowering keeps: the same recursion ending in `if c: ... else: ...`)
    kept = source.replace(
        "        return x, (c, 0, 0.0, 0.0)\n    _t = J_f(x, n - 1)\n"
        "    return _t[0] * x, (c, _t[1], x, _t[0])\n",
        "        v, r1, r2, r3 = x, 0, 0.0, 0.0\n    else:\n        _t = J_f(x, n - 1)\n"
        "        v, r1, r2, r3 = _t[0] * x, _t[1], x, _t[0]\n"
        "    return v, (c, r1, r2, r3)\n")
    assert kept != source
    tree, _ = native.lower_source(kept, {})
    assert "_nt_records1_f" in ast.unparse(tree)


def second_det(A):
    return tl.grad(det_laplace)(A)[0, 1]


def test_recursive_second_order_matches_python_backend() -> None:
    """The gradient of a function that takes the determinant's gradient: native or
    fallen back, the Python backend's values (1e-12), and fallbacks name a line."""
    A = np.random.default_rng(11).standard_normal((4, 4))
    f = tl.grad(second_det, backend="native")
    assert_same(tl.grad(second_det)(A), f(A))
    entry = _entry(f, A)
    if not entry.is_native:
        assert entry.fallback is not None and entry.fallback.where is not None


def test_recursive_gradient_with_branch_closures_native() -> None:
    """The other spelling of the determinant keeps closures in its records (a branch's
    backpropagator per term): they are tagged tuples in native code
    (`native_closures`), so its gradient runs natively, with the Python backend's
    values."""
    from research_programs import det_laplace_filter

    A = np.random.default_rng(7).standard_normal((4, 4))
    f = tl.grad(det_laplace_filter, backend="native")
    assert_same(tl.grad(det_laplace_filter)(A), f(A))
    entry = _entry(f, A)
    assert entry.is_native, entry.fallback


def game(x, y, a, b):
    return 0.5 * x * x + a * x * y - 0.5 * y * y + b * math.sin(x)


def saddle(a, b):
    """Descent on x inside ascent on y, each step a `tl.grad` (the saddle of bench/)."""
    y = 0.0
    x = 0.0
    for _ in range(3):
        for _ in range(4):
            x = x - 0.3 * tl.grad(game, argnums=0)(x, y, a, b)
        y = y + 0.3 * tl.grad(game, argnums=1)(x, y, a, b)
    return game(x, y, a, b)


def test_nested_descent_gradient_is_native() -> None:
    f = tl.grad(saddle, argnums=(0, 1), backend="native")
    expected = tl.grad(saddle, argnums=(0, 1))(0.7, 0.4)
    assert_same(expected, f(0.7, 0.4))
    h = 1e-6
    for k in range(2):
        up = [0.7, 0.4]
        down = [0.7, 0.4]
        up[k] += h
        down[k] -= h
        fd = (saddle(*up) - saddle(*down)) / (2 * h)
        assert f(0.7, 0.4)[k] == pytest.approx(fd, rel=1e-6, abs=1e-8)
    assert _entry(f, 0.7, 0.4).is_native


def curved(x, a):
    return a * x * x + math.sin(x)


def descended(a):
    """A `tl.grad` inside the compiled function: its derivative code is generic (it
    tests `isinstance(v, (tuple, list))`, which Numba decides by type)."""
    x = 0.5
    for _ in range(5):
        x = x - 0.1 * tl.grad(curved)(x, a)
    return x


def test_grad_inside_compiled_code_is_native() -> None:
    f = tl.jit(descended, backend="native")
    assert_same(tl.jit(descended)(0.7), f(0.7))
    assert _entry(f, 0.7).is_native


# --- list sensitivities (backend/native_loops.py: lower_list_growth, lower_list_sens) ------


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _cell(weight, bias, hidden, cell, inp):
    b = hidden.shape[0]
    gates = np.concatenate([inp, hidden, inp, hidden]) * weight + bias
    cell = cell * _sigmoid(gates[0:b]) + _sigmoid(gates[b:2 * b]) * np.tanh(gates[3 * b:])
    return _sigmoid(gates[2 * b:3 * b]) * np.tanh(cell), cell


def _layers(params, state, inp):
    """Stacked cells, their state a list grown by concatenation (bench's LSTM)."""
    x = inp
    new_state = []
    for j in range(len(state) // 2):
        h, s = _cell(params[2 * j], params[2 * j + 1], state[2 * j], state[2 * j + 1], x)
        new_state = new_state + [h, s]
        x = h
    return x, new_state


def stacked_cells(params, state, sequence):
    st = [state[i] for i in range(state.shape[0])]
    total = 0.0
    for t in range(sequence.shape[0]):
        y, st = _layers(params, st, sequence[t])
        total = total + np.sum(y * y) + 0.5 * np.sum(st[1])
    return total


def test_list_state_gradient_is_native() -> None:
    """The derivative of a list of arrays grown by concatenation and taken apart: its
    sensitivity a list (`scatter_add_known` into a list, `tuple(d)` of it, `d[:n]`)."""
    rng = np.random.default_rng(7)
    b = 3
    params = rng.standard_normal((4, 4 * b)) * 0.5
    state = rng.standard_normal((4, b)) * 0.5
    sequence = rng.standard_normal((5, b))
    f = tl.value_and_grad(stacked_cells, (0, 2), backend="native")
    value, grads = f(params, state, sequence)
    assert_same(tl.value_and_grad(stacked_cells, (0, 2))(params, state, sequence),
                (value, grads))
    assert _entry(f, params, state, sequence).is_native
    # (against central differences of the objective run by CPython)
    for k, x in ((0, params), (1, sequence)):
        probe = rng.standard_normal(x.shape)
        h = 1e-6
        args_plus = [params, state, sequence]
        args_minus = [params, state, sequence]
        at = 0 if k == 0 else 2
        args_plus[at], args_minus[at] = x + h * probe, x - h * probe
        fd = (stacked_cells(*args_plus) - stacked_cells(*args_minus)) / (2 * h)
        assert float(np.sum(grads[k] * probe)) == pytest.approx(fd, rel=1e-6)
    source = native.native_source(f._get(f.bind((params, state, sequence), {})))
    assert "_nt_items_of" in source and "_nt_split_items" in source


def _predict(params, extra, state, inp):
    """bench's `lstm_predict`: the new state is a list grown by concatenation, returned
    (its derivative saves the list as it was before each growth, `t = xs + [a, b]; ...;
    xs = t`, and needs only its length)."""
    x = inp * extra[0]
    new_state = []
    for j in range(len(state) // 2):
        h, s = _cell(params[2 * j], params[2 * j + 1], state[2 * j], state[2 * j + 1], x)
        new_state = new_state + [h, s]
        x = h
    return x * extra[1] + extra[2], new_state


def lstm_like(params, extra, state, sequence):
    c, b = sequence.shape
    st = [state[i] for i in range(state.shape[0])]
    total = 0.0
    x = sequence[0]
    for t in range(c - 1):
        y, st = _predict(params, extra, st, x)
        ynorm = y - np.log(np.sum(np.exp(y)))
        total = total + np.sum(sequence[t + 1] * ynorm)
        x = sequence[t + 1]
    return -total / ((c - 1) * b)


def test_lstm_gradient_is_native() -> None:
    """The shape of bench's LSTM gradient: native, equal to the Python backend's, with
    the saved list kept as its length (`lower_saved_lengths`), its sensitivity split
    into one list and a tuple (`lower_split_items`), and the parameter rows summed into
    one accumulator in place (`lower_nested_sums` through a tuple assignment)."""
    rng = np.random.default_rng(11)
    b = 3
    params = rng.standard_normal((4, 4 * b)) * 0.5
    extra = rng.standard_normal((3, b)) * 0.5
    state = rng.standard_normal((4, b)) * 0.5
    sequence = rng.standard_normal((6, b))
    args = (params, extra, state, sequence)
    f = tl.value_and_grad(lstm_like, (0, 1), backend="native")
    value, grads = f(*args)
    assert_same(tl.value_and_grad(lstm_like, (0, 1))(*args), (value, grads))
    assert _entry(f, *args).is_native
    for k, x in ((0, params), (1, extra)):  # (against central differences, CPython)
        probe = rng.standard_normal(x.shape)
        h = 1e-6
        plus, minus = list(args), list(args)
        plus[k], minus[k] = x + h * probe, x - h * probe
        fd = (lstm_like(*plus) - lstm_like(*minus)) / (2 * h)
        assert float(np.sum(grads[k] * probe)) == pytest.approx(fd, rel=1e-6)
    source = native.native_source(f._get(f.bind(args, {})))
    assert "_nt_split_items" in source and "_nt_split_at" not in source
    assert "[:_nt_len" not in source  # (no list copied per turn: its length is saved)
    assert "_nt_zeros_for(params)" in source and "_nt_add_into(d_params" not in source


_SAVED_LENGTH = """
def f(n):
    _nt_items1 = []
    xs = []
    for i in range(n):
        _nt_len1 = len(xs)
        xs.append(i)
        _nt_items1.append((xs[:_nt_len1], i))
    s = (_nt_items1, 0, len(_nt_items1))
    out = []
    _nt_list2, _nt_low2, _nt_k2 = (s[0], s[1], s[2] - 1)
    while _nt_k2 >= _nt_low2:
        saved = _nt_list2[_nt_k2]
        v = saved[0]
        out.append((len(v), saved[1]READ))
        _nt_k2 = _nt_k2 - 1
    return out
"""


@pytest.mark.parametrize("read, kept", [("", False), (", v[-1:]", True),
                                        (", saved[0]", True)])
def test_saved_lengths(read: str, kept: bool) -> None:
    """A saved copy of a list read only by `len` is saved as its length; one read any
    other way is kept. Either way the code computes what it did."""
    from tapeless.backend.native_loops import lower_saved_lengths

    source = _SAVED_LENGTH.replace("READ", read)
    tree = ast.parse(source)
    assert lower_saved_lengths(tree) == (0 if kept else 1)
    lowered = ast.unparse(tree)
    assert ("xs[:_nt_len1]" in lowered) == kept
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    exec(source, before)  # noqa: S102 - the test's own text
    exec(lowered, after)  # noqa: S102
    assert before["f"](5) == after["f"](5)


def test_split_items_only_where_the_tail_is_taken_apart() -> None:
    from tapeless.backend.native_loops import lower_split_items

    source = textwrap.dedent("""
        def f(d, n):
            t = _nt_split_at(d, n)
            a = t[0]
            b = t[1]
            c = _nt_items_of(b, 2)
            return a, cEXTRA
        """)
    tree = ast.parse(source.replace("EXTRA", ""))
    assert lower_split_items(tree) == 1
    assert "_nt_split_items(d, n, 2)" in ast.unparse(tree)
    tree = ast.parse(source.replace("EXTRA", ", b"))  # (the tail read as a list too)
    assert lower_split_items(tree) == 0


def test_nested_sum_through_a_tuple_assignment() -> None:
    from tapeless.backend.native_loops import lower_nested_sums

    source = textwrap.dedent("""
        def f(x, n):
            d = None
            for i in range(n):
                e = None
                for j in range(n):
                    e = _nt_scatter_add_known(e, x, (j,), (1.0,))
                g, d = (OTHER, _nt_add_into(d, e))
            return d
        """)
    tree = ast.parse(source.replace("OTHER", "i"))
    assert lower_nested_sums(tree) == 1
    text = ast.unparse(tree)
    assert "e = d" in text and "g, d = (i, e)" in text and "d = _nt_zeros_for(x)" in text
    tree = ast.parse(source.replace("OTHER", "d"))  # (the other value reads the sum)
    assert lower_nested_sums(tree) == 0


_PLUS_ONE, _TIMES_FIVE = (lambda u: u + 1), (lambda u: u * 5)  # (one line: one name)


def test_start_keys_of_two_lambdas_on_one_line(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Two lambdas on one line share their file, name and line: the start key also
    covers their code, so the second does not start from the first's record (it
    returned 3 for `u * 5` at 2)."""
    monkeypatch.setenv("TAPELESS_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("TAPELESS_NATIVE_CACHE", raising=False)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert _PLUS_ONE.__code__.co_firstlineno == _TIMES_FIVE.__code__.co_firstlineno
    assert tl.jit(_PLUS_ONE, backend="native")(2) == 3
    assert tl.jit(_TIMES_FIVE, backend="native")(2) == 10
    assert tl.jit(_PLUS_ONE, backend="native")(2) == 3


def two_layers(W1, W2, X):
    return np.sum(np.tanh(W2 @ np.tanh(W1 @ X)))


def test_array_bound_program_runs_on_the_python_backend(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """A program with no loop whose arrays are large and that multiplies matrices is
    BLAS's work on either backend: it runs on the Python backend, said why, without
    asking Numba (`array_bound`)."""
    monkeypatch.setenv("TAPELESS_NATIVE_SPEED_CHECK", "1")
    rng = np.random.default_rng(0)
    args = (rng.standard_normal((32, 32)), rng.standard_normal((32, 32)),
            rng.standard_normal((32, 8)))
    for make in (tl.jit, lambda f, **kw: tl.value_and_grad(f, (0, 1), **kw)):
        f = make(two_layers, backend="native")
        assert_same(make(two_layers)(*args), f(*args))
        entry = _entry(f, *args)
        assert not entry.is_native and entry.fallback is not None
        assert "array-bound" in entry.fallback.reason and "1024 elements" in \
            entry.fallback.reason
        assert "TAPELESS_NATIVE_SPEED_CHECK=0" in str(entry.fallback)
    # Small arrays, no matrix product, or a loop, stay native; so does any program with
    # the check off.
    small = tuple(a[:8, :8] for a in args)
    assert _entry(tl.jit(two_layers, backend="native"), *small).is_native

    def elementwise(W1, W2, X):  # (Numba fuses these into one loop: faster natively)
        return np.sum(np.tanh(W1) * W2 - np.exp(-W2) * W1)

    e = tl.jit(elementwise, backend="native")
    assert_same(tl.jit(elementwise)(*args), e(*args))
    assert _entry(e, *args).fallback is None or "array-bound" not in \
        _entry(e, *args).fallback.reason

    def looped(W1, W2, X):
        total = 0.0
        for _ in range(2):
            total = total + two_layers(W1, W2, X)
        return total

    g = tl.jit(looped, backend="native")
    assert_same(tl.jit(looped)(*args), g(*args))
    assert _entry(g, *args).fallback is None or "array-bound" not in \
        _entry(g, *args).fallback.reason
    monkeypatch.setenv("TAPELESS_NATIVE_SPEED_CHECK", "0")
    assert _entry(tl.jit(two_layers, backend="native"), *args).is_native


def test_a_program_that_falls_back_runs_the_python_backends_program() -> None:
    """Code lowered for Numba is not what the Python backend runs (no CPython spellings,
    no checkpointed loops): a program that falls back runs the Python backend's own
    (here `x.sum()`, its spelling of `np.sum(x)`)."""
    from tapeless import api

    def refused(x):
        return {"a": np.sum(x)}["a"] * 2.0  # (a dict: the lowering refuses it)

    x = np.arange(4.0)
    f = tl.jit(refused, backend="native")
    assert f(x) == 12.0
    entry = _entry(f, x)
    assert entry.fallback is not None and "a dict" in entry.fallback.reason
    python = tl.jit(refused)
    assert python(x) == 12.0
    made = api.GENERATED[entry.python.__code__.co_filename].source
    assert made == python._get((x,)).source and ".sum()" in made


def bool_and(a, b):
    return a and b


def bool_or_one(x, c):
    return x if c else 1


def int_then_floats(n):
    total = 0
    for _ in range(n):
        total = total + 0.5
    return total


def ufunc_bool_or_number(x, c):
    return np.logical_not(x) if c > 0 else 2


def count_or_half(x, c):
    return np.count_nonzero(x) if c > 0 else 0.5


@pytest.mark.parametrize(("fn", "calls"), [
    (bool_and, [(True, 2), (False, 2), (True, 0), (False, 0)]),
    (bool_or_one, [(True, False), (True, True), (False, True), (False, False)]),
    (int_then_floats, [(3,), (0,), (1,)]),
    # (a call's result: Numba's annotation types the call by its signature)
    (ufunc_bool_or_number, [(1.5, -1), (1.5, 1), (0.0, 1), (True, 1)]),
    (ufunc_bool_or_number, [(1.5, 1), (1.5, -1), (0.0, 2), (True, -1)]),
    (count_or_half, [(np.array([1.0, 0.0, 2.0]), -1), (np.array([1.0, 0.0, 2.0]), 1)]),
    (count_or_half, [(np.array([1.0, 0.0, 2.0]), 1), (np.array([1.0, 0.0, 2.0]), -1)]),
])
def test_result_type_that_depends_on_values(fn: Any, calls: list) -> None:
    """A value that is a bool on one path and an int on another (or an int and a float)
    keeps each path's type in CPython; Numba gives it one. The first call's result has
    the right type whatever the code does, so the program is refused by its typed code
    (`unified_types`), at the line where the types meet, and every later call is
    CPython's."""
    f = tl.jit(fn, backend="native")
    for args in calls:
        out, expected = f(*args), fn(*args)
        assert out == expected and type(out) is type(expected), (args, out, expected)
    entry = _entry(f, *calls[0])
    assert not entry.is_native and entry.fallback is not None
    assert "on one path" in entry.fallback.reason and "run natively" in entry.fallback.reason
    where = entry.fallback.where
    assert where is not None and where.filename == __file__ and \
        fn.__code__.co_firstlineno <= where.line <= fn.__code__.co_firstlineno + 4


def test_one_type_on_every_path_stays_native() -> None:
    """bools on both paths, or ints on both: one type, native."""
    def both_bools(a, b):
        return a and b

    f = tl.jit(both_bools, backend="native")
    for args in [(True, False), (False, True), (True, True)]:
        out = f(*args)
        assert out is both_bools(*args)
    assert _entry(f, True, False).is_native
    g = tl.jit(bool_and, backend="native")
    assert g(3, 2) == 2 and g(0, 2) == 0 and _entry(g, 3, 2).is_native


_MIXED_DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import tapeless as tl
    import mixedprog
    tl.api.Transformed.start_from_cache = False  # (built: Numba's cache, no record)
    f = tl.jit(mixedprog.f, backend="native")
    outs = [f(True, 2), f(False, 2)]
    entry = f._get((True, 2)).fn
    hits = sum(sum(d.stats.cache_hits.values()) for d in entry.module.dispatchers)
    print(repr(outs), entry.is_native, hits > 0)
""")


def test_mixed_types_refused_from_numbas_cache(tmp_path: Path) -> None:
    """A second process that loads the program's code from Numba's cache (no start record:
    `vjp` and the other transforms) checks the typed code Numba cached with it."""
    (tmp_path / "mixedprog.py").write_text("def f(a, b):\n    return a and b\n")
    env = dict(os.environ, TAPELESS_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(ROOT / "src"), TAPELESS_NATIVE_SPEED_CHECK="0")
    env.pop("NUMBA_CACHE_DIR", None)
    runs = [subprocess.run([sys.executable, "-c", _MIXED_DRIVER, str(tmp_path)], env=env,
                           capture_output=True, text=True) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr
    assert [r.stdout.split() for r in runs] == [["[2,", "False]", "False", "False"],
                                                ["[2,", "False]", "False", "True"]]


_STARTED_FALLBACK_PROGRAM = '''
import numpy as np


def f(x, n):
    table = {"scale": 2.0}  # (a dict: the native backend falls back)
    return table["scale"] / n * np.sum(x * x)
'''

_STARTED_FALLBACK_DRIVER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    import tapeless as tl
    import tapeless.api
    import fbprog
    if sys.argv[2] == "started":  # (nothing may be built: each starts from its record)
        def refused(*args, **kwargs):
            raise AssertionError("built, not started from the cache")
        tapeless.api.load = refused
    x = np.array([0.5, -1.5, 2.0])
    for make in (lambda: tl.jit(fbprog.f, backend="native"),
                 lambda: tl.value_and_grad(fbprog.f, 0, backend="native")):
        fn = make()
        entry = fn._get((x, 2)).fn
        try:
            fn(x, 0)
            raised = "nothing"
        except ZeroDivisionError as error:  # (the user's line in the note)
            raised = "fbprog.py:7" in "".join(getattr(error, "__notes__", []))
        print(repr(fn(x, 2)), "|", entry.is_native, "|", entry.fallback.reason[:7], "|",
              raised)
""")


def test_second_process_starts_a_fallback_from_its_record(tmp_path: Path) -> None:
    """A program that falls back records the Python backend's program with why: a second
    process loads it from its source (nothing parsed, differentiated, optimized or
    generated: the build is refused there), with the same results, and its errors name
    the user's line."""
    (tmp_path / "fbprog.py").write_text(_STARTED_FALLBACK_PROGRAM)
    env = dict(os.environ, TAPELESS_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(ROOT / "src"), TAPELESS_NATIVE_SPEED_CHECK="0")
    env.pop("NUMBA_CACHE_DIR", None)
    runs = []
    for mode in ("cold", "started"):
        out = subprocess.run([sys.executable, "-c", _STARTED_FALLBACK_DRIVER, str(tmp_path), mode],
                             env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        runs.append([line.split(" | ") for line in out.stdout.splitlines()])
    assert runs[0] == runs[1]
    assert [r[1:] for r in runs[1]] == [["False", "a dict ", "True"]] * 2
    assert runs[1][0][0] == repr(np.float64(6.5)) and \
        runs[1][1][0].startswith(f"({np.float64(6.5)!r}, array([")


def _broadcast_inner(a, x):
    return np.sum(np.sin(a + x))


def _broadcast_outer(a, x):
    return tl.grad(_broadcast_inner)(a, x) ** 2


def test_broadcast_like_native():
    # (the second derivative of a number broadcast against an array: `broadcast_like`,
    # the adjoint of `unbroadcast`; it made the program fall back)
    x = np.linspace(0.0, 1.0, 5)
    g = tl.grad(_broadcast_outer, backend="native")
    got = g(0.3, x)
    assert [getattr(c.fn, "fallback", None) for c in g._compiled.values()] == [None]
    assert got == pytest.approx(tl.grad(_broadcast_outer)(0.3, x), rel=1e-12)
    want = -2.0 * np.sum(np.cos(0.3 + x)) * np.sum(np.sin(0.3 + x))
    assert got == pytest.approx(want, rel=1e-12)
