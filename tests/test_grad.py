"""Gradients of whole programs.

(a) every program of the differential corpus whose result has a float part, at every
    argument set, differentiated with respect to its float arguments (tl.grad for float
    results, tl.vjp with a random cotangent otherwise) against central finite
    differences (CORPUS_SKIP lists the points where a program is not differentiable);
(b) random programs from the generator of tests/test_random_programs.py, against finite
    differences wherever those are stable;
(c) HIPS autograd on the array programs of tests/autograd_programs.py, to 1e-10;
(d) pytree arguments: the gradient has the argument's structure;
(e) closures, functions as values, recursion, loops with data-dependent trip counts,
    break/continue/early return, comprehensions and dicts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import math
import os
import random
import sys
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import autograd_programs as agp
import numpy as np
import pytest
from corpus.programs import CASES, rk_integrate_state
from gradcheck import (
    assert_same_structure,
    check_directional,
    directional_fd,
    elementwise_fd,
    leaves,
    random_cotangent,
    vdot,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tapeless as tl
from tapeless.grad_api import _integer_leaf

# --- (a) the differential corpus ---------------------------------------------------------

# Points where a corpus program is not differentiable (finite differences straddle a jump
# or a kink), or uses something tapeless does not differentiate (it then raises).
CORPUS_SKIP: dict[tuple[str, int], str] = {
    ("if_elif_else", 1): "x == 0.0 selects a branch returning the constant 100.0 (a jump)",
    ("float_arithmetic", 1): "a // b and a % b jump at a / b == -3",
    ("array_operators", 0): "x // 0.5 and x % 0.75 jump at x = 0.5 and 2.0",
    ("comprehension_with_closure", 0): "the filter x > k flips at x == k == 2.0",
    ("array_methods_misc", 0): "x.round(1) jumps at x = 0.25",
    ("and_or_with_side_effects", 0): "`b and ...` with b == 0.0: truthiness jumps at 0",
    ("and_or_with_side_effects", 1): "`a and ...` with a == 0.0: truthiness jumps at 0",
    ("np_where_clip", 1): "np.clip and np.where(x < 1, ...) switch at x == 1.0",
    ("np_more_elementwise", 0): "np.floor and np.ceil jump at x == 2.0",
    ("np_astype_and_dtypes", 0): "(x * 10).astype(int) jumps at x = 0.5 and 2.0",
}
# Known failures, with their minimal repro in the test named in the reason.
CORPUS_XFAIL: dict[tuple[str, int], str] = {}
# Looser tolerances (float32 arguments: finite differences lose precision).
CORPUS_RTOL: dict[tuple[str, int], float] = {("numpy_scalars", 0): 1e-4}


def _differentiable_arg(x: Any) -> bool:
    if x is None or isinstance(x, (str, type)) or callable(x):
        return False
    return bool(leaves(x)) and _integer_leaf(x) is None


@contextlib.contextmanager
def _quiet() -> Any:
    with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _corpus_params() -> list:
    out = []
    for name, fn, arg_sets in CASES:
        params = inspect.signature(fn).parameters.values()
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            continue  # argnums would index the packed *args tuple
        for k, a in enumerate(arg_sets):
            if a.kwargs:
                continue
            try:
                with _quiet():
                    result = fn(*a.args)
            except Exception:  # noqa: BLE001 - programs that raise are not differentiated
                continue
            if callable(result) or not leaves(result):
                continue
            argnums = tuple(i for i, x in enumerate(a.args) if _differentiable_arg(x))
            if not argnums:
                continue
            marks = []
            if (name, k) in CORPUS_XFAIL:
                marks.append(pytest.mark.xfail(strict=True, reason=CORPUS_XFAIL[(name, k)]))
            out.append(pytest.param(name, k, fn, a.args, argnums, id=f"{name}-{k}",
                                    marks=marks))
    return out


CORPUS = _corpus_params()


def test_corpus_has_differentiable_programs() -> None:
    floats = [p for p in CORPUS if isinstance(_quiet_call(p.values[2], p.values[3]), float)]
    assert len(CORPUS) >= 100 and len(floats) >= 40


def _quiet_call(fn: Any, args: tuple) -> Any:
    with _quiet():
        return fn(*args)


@pytest.mark.parametrize(("name", "k", "fn", "args", "argnums"), CORPUS)
def test_corpus_gradient(name: str, k: int, fn: Any, args: tuple,
                         argnums: tuple[int, ...]) -> None:
    if (name, k) in CORPUS_SKIP:
        pytest.skip(CORPUS_SKIP[(name, k)])
    rng = np.random.default_rng(k)
    result = _quiet_call(fn, args)
    if isinstance(result, (float, np.floating)):
        with _quiet():
            grads = tl.grad(fn, argnums)(*args)
        f = fn
    else:
        ct = random_cotangent(rng, result)
        with _quiet():
            out, vjp_fn = tl.vjp(fn, *args)
            sens = vjp_fn(ct)
        grads = tuple(sens[i] for i in argnums)

        def f(*a: Any) -> float:
            return vdot(ct, fn(*a))
    for i, g in zip(argnums, grads, strict=True):
        assert_same_structure(g, args[i], f"d/d{list(inspect.signature(fn).parameters)[i]}")
    with _quiet():
        check_directional(grads, f, args, argnums, rng, rtol=CORPUS_RTOL.get((name, k), 1e-6),
                          what=name)


# --- (b) random programs --------------------------------------------------------------------

try:
    from test_random_programs import Program, RandomChoices, generate_program, programs
    from test_random_programs import load_program as _load_random
except ImportError:  # pragma: no cover - the generator is optional
    generate_program = programs = None


def _stable_fd(f: Any, x: float) -> float | None:
    """d f / dx by the 4-point stencil at two step sizes; None where they disagree (a
    jump or kink within reach, e.g. round(), int(), comparisons) or f raises."""
    try:
        with _quiet():
            coarse = directional_fd(f, (x,), (0,), (1.0,), h=1e-4)
            fine = directional_fd(f, (x,), (0,), (1.0,), h=2e-5)
            here, left, right = f(x), f(x - 1e-5), f(x + 1e-5)
    except (ArithmeticError, ValueError, AssertionError):  # AssertionError: the program's
        return None
    if not all(math.isfinite(v) for v in (coarse, fine, here, left, right)):
        return None
    if abs(coarse - fine) > 1e-6 * (1.0 + abs(fine)):
        return None
    # A jump at x alone (`v or 0.25` at v == 0.0) is invisible to the stencil.
    if abs(here - (left + right) / 2) > 1e-6 * (1.0 + abs(here)):
        return None
    return fine


_TRACED = "<random program, traced>"  # the file name of the copy `_program_paths` runs


class _Replaced:
    """A module (math, np) with some of its functions replaced."""

    def __init__(self, module: Any, **replaced: Callable[..., Any]):
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _side(a: Any, b: Any = 0) -> Any:
    """Which side of b a is on: -1, 0 or 1 (elementwise for arrays)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return tuple(np.sign(np.subtract(a, b)).ravel().tolist())
    return (a > b) - (a < b)


def _program_paths(source: str, entry: str) -> Callable[[tuple], tuple]:
    """A function of the arguments giving the path the program takes: the bytecode
    instructions it runs (its branches, loop trips, `and`/`or`, conditional
    expressions) and the side of each kink or step of a builtin (the sign of the
    argument of abs and np.abs, the order of the arguments of min and max, the result
    of round, int, math.floor and math.ceil). It runs a copy of the program's module
    (tapeless compiles the original, which keeps the real builtins) under a tracer:
    the path depends on the program alone, never on tapeless."""
    notes: list = []

    def noting(fn: Callable[..., Any], side: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any) -> Any:
            out = fn(*args)
            notes.append((fn.__name__, side(out, *args)))
            return out
        return wrapper

    def sign(out: Any, a: Any, *rest: Any) -> Any:
        return _side(a)

    def order(out: Any, *args: Any) -> Any:
        if len(args) == 1:  # min(iterable): the result
            return out
        return tuple(_side(a, b) for a, b in zip(args[:-1], args[1:], strict=True))

    def result(out: Any, *args: Any) -> Any:
        return out

    def huge(out: Any, *args: Any) -> Any:
        # (an exp too large for the terms added to it to change it: see HUGE)
        return bool(np.max(np.abs(out)) > HUGE)

    namespace: dict[str, Any] = {"__name__": "_traced_random_program"}
    exec(compile(source, _TRACED, "exec"), namespace)  # noqa: S102
    namespace.update(abs=noting(abs, sign), min=noting(min, order),
                     max=noting(max, order), round=noting(round, result),
                     int=noting(int, result),
                     math=_Replaced(math, floor=noting(math.floor, result),
                                    ceil=noting(math.ceil, result),
                                    exp=noting(math.exp, huge)),
                     np=_Replaced(np, abs=noting(np.abs, sign), exp=noting(np.exp, huge)))
    fn = namespace[entry]

    def step(frame: Any, event: str, arg: Any) -> Any:
        if event == "opcode":
            notes.append((id(frame.f_code), frame.f_lasti))
        return step

    def enter(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != _TRACED:
            return None
        frame.f_trace_opcodes = True
        return step

    def path(args: tuple) -> tuple:
        notes.clear()
        old = sys.gettrace()
        sys.settrace(enter)
        try:
            with _quiet():
                fn(*args)
        except Exception as exc:  # noqa: BLE001 - raising is a path too
            notes.append(("raised", type(exc)))
        finally:
            sys.settrace(old)
        return tuple(notes)

    return path


# An exp above this swallows what is added to it (1e12 + 1e-5 rounds away the 1e-5's
# last digits): finite differences then see a flat function where the derivative of
# the expression as written, tapeless's and every AD tool's, is not zero.
HUGE = 1e12


def _overflows_precision(path: Callable[[tuple], tuple], point: tuple) -> bool:
    """Whether the program computes a huge exp at `point` (see HUGE)."""
    return any(note == ("exp", True) for note in path(point))


def _decided_at_point(path: Callable[[tuple], tuple], f: Callable[[float], float],
                      point: tuple, i: int) -> bool:
    """Whether the program decides something at `point` that finite differences along
    argument `i` (of the function `f` of it) cannot see: it takes another path (see
    `_program_paths`) at the point than on both sides of it, next to it (`if
    math.sin(y):` at y == 0.0, or `max(x, y)` at x == y: a derivative that holds at the
    point alone, as in every AD tool), or it switches paths there and the slopes on the
    two sides differ (the derivative is one side's, finite differences average them)."""
    here = path(point)
    v = point[i]

    def other(*nears: float) -> bool:
        return any(path(point[:i] + (near,) + point[i + 1:]) != here for near in nears)

    left = other(math.nextafter(v, -math.inf), v - 1e-9)
    right = other(math.nextafter(v, math.inf), v + 1e-9)
    return (left and right) or ((left or right) and not _slopes_agree(f, v))


def _slopes_agree(f: Callable[[float], float], v: float) -> bool:
    """Whether the one-sided slopes of f at v (3-point stencils, error O(h^2)) agree."""
    h = 1e-5
    try:
        with _quiet():
            here, l1, l2, r1, r2 = f(v), f(v - h), f(v - 2 * h), f(v + h), f(v + 2 * h)
    except (ArithmeticError, ValueError, AssertionError):
        return False
    left = (3 * here - 4 * l1 + l2) / (2 * h)
    right = (-3 * here + 4 * r1 - r2) / (2 * h)
    return math.isfinite(left) and math.isfinite(right) and \
        abs(left - right) <= 1e-6 * (1.0 + abs(left) + abs(right))


def check_random_program(fn: Any, points: list[tuple]) -> int:
    """Check the gradient at each point where it is defined and smooth; return how
    many. Which points are skipped depends on the program and finite differences
    alone, so that a wrong gradient fails, never skips."""
    grad = tl.grad(fn, (0, 1))
    path = _program_paths(Path(fn.__code__.co_filename).read_text(), fn.__name__)
    checked = 0
    for x, y, n in points:
        try:
            with _quiet():
                value = fn(x, y, n)
        except (ArithmeticError, ValueError, AssertionError):
            continue
        if not isinstance(value, float) or not math.isfinite(value):
            continue
        along = (lambda t: fn(t, y, n), lambda t: fn(x, t, n))
        fds = (_stable_fd(along[0], x), _stable_fd(along[1], y))
        if None in fds or _overflows_precision(path, (x, y, n)) or \
                any(_decided_at_point(path, along[i], (x, y, n), i) for i in (0, 1)):
            continue
        with _quiet():
            gx, gy = grad(x, y, n)
        for g, fd, which in ((gx, fds[0], "x"), (gy, fds[1], "y")):
            assert abs(g - fd) <= 1e-5 * (1.0 + abs(fd)), \
                f"d/d{which} at {(x, y, n)}: tapeless {g!r}, finite differences {fd!r}"
        checked += 1
    return checked


@pytest.fixture(scope="module")
def program_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("grad_random_programs")


# How many random programs: hypothesis examples (small programs) and seeded larger ones.
# Compiling a gradient dominates the cost; raise these for a longer search, e.g.
# TAPELESS_RANDOM_GRAD_EXAMPLES=300.
RANDOM_EXAMPLES = int(os.environ.get("TAPELESS_RANDOM_GRAD_EXAMPLES", "45"))
LARGER_PROGRAMS = max(RANDOM_EXAMPLES // 3, 5)
# A search beyond CI's fixed examples: TAPELESS_RANDOM_GRAD_SEED=N draws other programs
# (hypothesis not derandomized, larger programs from seeds offset by 1000 * N).
RANDOM_SEED = int(os.environ.get("TAPELESS_RANDOM_GRAD_SEED", "0"))

_floats = st.one_of(st.sampled_from([0.3, -1.1, 2.5]), st.floats(-4.0, 4.0, allow_nan=False))


@pytest.mark.skipif(generate_program is None, reason="tests/test_random_programs.py missing")
@settings(max_examples=RANDOM_EXAMPLES, deadline=None, derandomize=not RANDOM_SEED,
          database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(program=programs() if programs else st.nothing(),
       points=st.lists(st.tuples(_floats, _floats, st.integers(-2, 6)), min_size=2, max_size=2))
@pytest.mark.filterwarnings("ignore:The recursion limit will not be reset")
def test_random_program_gradients(program: Any, points: list[tuple], program_dir: Path) -> None:
    fn = getattr(_load_random(program, program_dir), program.entry)
    try:
        check_random_program(fn, points)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- program ---\n{program.source}") from None


@pytest.mark.skipif(generate_program is None, reason="tests/test_random_programs.py missing")
def test_larger_random_program_gradients(program_dir: Path) -> None:
    """Seeded larger programs: most points must be checkable, and all checked agree."""
    checked = total = 0
    for seed in range(LARGER_PROGRAMS):
        rng = random.Random(5000 + 1000 * RANDOM_SEED + seed)
        program = generate_program(RandomChoices(7000 + 1000 * RANDOM_SEED + seed), size=20)
        fn = getattr(_load_random(program, program_dir), program.entry)
        points = [(rng.uniform(-3, 3), rng.uniform(-3, 3), rng.randint(-2, 6))
                  for _ in range(3)]
        try:
            checked += check_random_program(fn, points)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- program ---\n{program.source}") from None
        total += len(points)
    assert checked >= total // 3, f"only {checked} of {total} points could be checked"


@pytest.mark.skipif(generate_program is None, reason="tests/test_random_programs.py missing")
def test_random_program_gradients_with_draws(program_dir: Path) -> None:
    """Programs that draw random numbers (seeding NumPy's global generator first, so
    that each evaluation draws the same numbers): the derivative code draws what the
    program draws and differentiates the rest."""
    checked = total = 0
    for seed in range(LARGER_PROGRAMS):
        rng = random.Random(9000 + 1000 * RANDOM_SEED + seed)
        program = generate_program(RandomChoices(8000 + 1000 * RANDOM_SEED + seed), size=16,
                                   draws=True, seeded=True)
        fn = getattr(_load_random(program, program_dir), program.entry)
        points = [(rng.uniform(-3, 3), rng.uniform(-3, 3), rng.randint(-2, 6))
                  for _ in range(3)]
        try:
            checked += check_random_program(fn, points)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- program ---\n{program.source}") from None
        total += len(points)
    assert checked >= total // 3, f"only {checked} of {total} points could be checked"


def _program(source: str, directory: Path) -> Any:
    body = "".join(f"    {line}\n" for line in source.splitlines())
    return _load_random(Program(f"import math\n\n\ndef f(x, y, n):\n{body}"), directory).f


@pytest.mark.skipif(generate_program is None, reason="tests/test_random_programs.py missing")
@pytest.mark.parametrize(("source", "point", "checked"), [
    # Decided at the point alone: the derivative there is not its neighbours'.
    ("if y == 0.0:\n    return 2.0 * y\nreturn 3.0 * y", (0.5, 0.0, 1), 0),
    ("if math.sin(y):\n    return 3.0 * y\nreturn 2.0 * y", (0.5, 0.0, 1), 0),
    ("return max(x, y) * 1.1 + min(x, y)", (0.3, 0.3, 1), 0),
    # Paths switch at the point, with slopes too close for finite differences to tell.
    ("if x < 0.0:\n    return 1.0 * x\nreturn 1.1 * x", (0.0, 0.5, 1), 0),
    ("return 1.0 * x if x < 1e-300 else 1.1 * x", (1e-308, 0.5, 1), 0),
    # Paths switch at the point with the same slope on both sides: checked.
    ("k = math.floor(x)\nreturn math.sin(x) * y + 0.0 * k", (0.0, 0.5, 1), 1),
    ("if x < 0.0:\n    return math.sin(x)\nreturn x - x ** 3 / 6.0", (0.0, 0.5, 1), 1),
    # Smooth: checked.
    ("if y == 0.0:\n    return 2.0 * y\nreturn 3.0 * y", (0.5, 0.25, 1), 1),
    ("return max(x, y) * 1.1 + min(x, y)", (0.3, 0.4, 1), 1),
])
def test_random_program_points_skipped(source: str, point: tuple, checked: int,
                                       program_dir: Path) -> None:
    """Points where the gradient holds at the point alone or on one side of it are
    skipped (finite differences measure another derivative); others are checked."""
    assert check_random_program(_program(source, program_dir), [point]) == checked


@pytest.mark.skipif(generate_program is None, reason="tests/test_random_programs.py missing")
def test_random_program_skips_do_not_depend_on_the_gradient(
        monkeypatch: pytest.MonkeyPatch, program_dir: Path) -> None:
    """A wrong gradient fails, even one that changes next to the point (an earlier
    version skipped the points where tapeless's gradient did)."""
    fn = _program("return math.sin(x) * y", program_dir)

    def wrong(fn: Any, argnums: Any) -> Any:
        return lambda x, y, n: (math.cos(x) * y + (1.0 if x == 0.3 else 0.0), math.sin(x))

    monkeypatch.setattr(tl, "grad", wrong)
    with pytest.raises(AssertionError, match="d/dx at"):
        check_random_program(fn, [(0.3, 0.7, 1)])


# --- (c) HIPS autograd -----------------------------------------------------------------------


def _autograd_module() -> types.ModuleType:
    source = Path(agp.__file__).read_text().replace("import numpy as np",
                                                    "import autograd.numpy as np")
    module = types.ModuleType("autograd_programs_ag")
    exec(compile(source, agp.__file__, "exec"), module.__dict__)  # noqa: S102
    return module


AG = _autograd_module()


def test_enough_autograd_programs() -> None:
    assert len(agp.PROGRAMS) >= 30


@pytest.mark.parametrize("name", sorted(agp.PROGRAMS))
def test_same_gradient_as_autograd(name: str) -> None:
    import autograd

    make, argnums = agp.PROGRAMS[name]
    args = make(np.random.default_rng(sum(map(ord, name))))
    value, ours = tl.value_and_grad(getattr(agp, name), argnums)(*args)
    ag_fn = getattr(AG, name)
    theirs = tuple(autograd.grad(ag_fn, i)(*args) for i in argnums)
    for i, a, b in zip(argnums, ours, theirs, strict=True):
        assert_same_structure(a, args[i], f"d/d arg{i}")
        for x, y in zip(leaves(a), leaves(b), strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name}: d/d arg{i}")
    assert value == pytest.approx(float(ag_fn(*args)), rel=1e-12, abs=1e-12)


# --- (d) pytree arguments --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Params:
    w: np.ndarray
    b: float
    name: str = "layer"


class Sample(NamedTuple):
    x: np.ndarray
    weight: float


@dataclasses.dataclass(frozen=True)
class Model:
    layers: tuple
    extra: dict


def tree_tuple(t):
    return t[0] * np.sum(t[1] ** 2) + np.sin(t[2])


def tree_list(xs):
    total = 0.0
    for x in xs:
        total = total + np.sum(np.tanh(x))
    return total * xs[0][0]


def tree_dict(d):
    return np.sum(d["w"] @ d["x"]) + d["b"] ** 2 + d["nested"]["c"] * 3.0


def tree_dataclass(p):
    return np.sum(p.w ** 2) * p.b


def tree_namedtuple(s):
    return s.weight * np.sum(np.exp(s.x))


def tree_nested(model, batch):
    h = batch.x
    for layer in model.layers:
        h = np.tanh(layer.w @ h + layer.b)
    return batch.weight * np.sum(h ** 2) + model.extra["scale"] * np.sum(h)


def tree_partial_use(d):
    return d["used"] * 2.0


def tree_two_args(a, b):
    return np.sum(a["x"] * b[0]) + b[1].b


def tree_has_aux(p):
    loss = np.sum(p.w ** 3) + p.b
    return loss, {"norm": np.sum(p.w ** 2), "count": 3}


def _rng() -> np.random.Generator:
    return np.random.default_rng(42)


def _params(r: np.random.Generator) -> Params:
    return Params(r.normal(size=(2, 3)), 0.7)


PYTREES = {
    "tuple": (tree_tuple, lambda r: ((0.5, r.normal(size=3), 1.2),)),
    "list": (tree_list, lambda r: ([r.normal(size=2), r.normal(size=(2, 2))],)),
    "dict": (tree_dict, lambda r: ({"w": r.normal(size=(2, 3)), "x": r.normal(size=3),
                                    "b": 0.4, "nested": {"c": 1.5}},)),
    "dataclass": (tree_dataclass, lambda r: (_params(r),)),
    "namedtuple": (tree_namedtuple, lambda r: (Sample(r.normal(size=3), 0.8),)),
    "nested": (tree_nested, lambda r: (
        Model((Params(r.normal(size=(3, 3)) / 2, 0.1), Params(r.normal(size=(2, 3)) / 2, -0.2)),
              {"scale": 0.9}),
        Sample(r.normal(size=3), 1.1))),
}


@pytest.mark.parametrize("kind", sorted(PYTREES))
def test_pytree_gradient_structure(kind: str) -> None:
    fn, make = PYTREES[kind]
    args = make(_rng())
    argnums = tuple(range(len(args)))
    grads = tl.grad(fn, argnums)(*args)
    for i, g in enumerate(grads):
        assert_same_structure(g, args[i], f"{kind}: d/d arg{i}")
    check_directional(grads, fn, args, argnums, _rng(), what=kind)


def test_pytree_dataclass_gradient_keeps_non_float_fields() -> None:
    p = _params(_rng())
    g = tl.grad(tree_dataclass)(p)
    assert isinstance(g, Params) and g.name == "layer"
    np.testing.assert_allclose(g.w, 2 * p.w * p.b, rtol=1e-14)
    assert g.b == pytest.approx(np.sum(p.w ** 2), rel=1e-14)


def test_pytree_namedtuple_gradient_is_a_namedtuple() -> None:
    s = Sample(np.array([0.1, -0.2, 0.3]), 2.0)
    g = tl.grad(tree_namedtuple)(s)
    assert type(g) is Sample
    np.testing.assert_allclose(g.x, 2.0 * np.exp(s.x), rtol=1e-14)
    assert g.weight == pytest.approx(np.sum(np.exp(s.x)), rel=1e-14)


def test_pytree_unused_entries_get_zeros_of_their_shape() -> None:
    d = {"used": 3.0, "unused": np.ones((2, 2)), "also": 5.0}
    g = tl.grad(tree_partial_use)(d)
    assert g["used"] == 2.0 and g["also"] == 0.0
    assert isinstance(g["unused"], np.ndarray) and g["unused"].shape == (2, 2)
    assert not g["unused"].any()


def test_pytree_several_argnums() -> None:
    a = {"x": np.array([1.0, 2.0])}
    b = (np.array([3.0, -1.0]), Params(np.zeros(2), 0.5))
    ga, gb = tl.grad(tree_two_args, (0, 1))(a, b)
    np.testing.assert_array_equal(ga["x"], b[0])
    np.testing.assert_array_equal(gb[0], a["x"])
    assert isinstance(gb[1], Params) and gb[1].b == 1.0 and not gb[1].w.any()


def test_pytree_float32_arrays_keep_their_dtype() -> None:
    x = np.array([0.5, 1.5], dtype=np.float32)
    g = tl.grad(lambda v: np.sum(v * v))(x)
    assert g.dtype == np.float32 and g.shape == (2,)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-6)


def test_pytree_value_and_grad_with_aux() -> None:
    p = _params(_rng())
    (value, aux), g = tl.value_and_grad(tree_has_aux, has_aux=True)(p)
    assert value == pytest.approx(np.sum(p.w ** 3) + p.b, rel=1e-14)
    assert aux["count"] == 3 and aux["norm"] == pytest.approx(np.sum(p.w ** 2), rel=1e-14)
    np.testing.assert_allclose(g.w, 3 * p.w ** 2, rtol=1e-14)
    g2, aux2 = tl.grad(tree_has_aux, has_aux=True)(p)
    np.testing.assert_allclose(g2.w, g.w, rtol=0)
    assert aux2["count"] == 3


def test_vjp_of_pytree_output() -> None:
    def f(x):
        return {"a": x * 2.0, "b": (np.sin(x), x[0])}

    x = np.array([0.3, -0.4])
    out, vjp_fn = tl.vjp(f, x)
    (g,) = vjp_fn({"a": np.ones(2), "b": (np.array([1.0, 0.0]), 2.0)})
    np.testing.assert_allclose(g, 2.0 + np.array([np.cos(0.3), 0.0]) + np.array([2.0, 0.0]),
                               rtol=1e-14)


# --- (e) closures, functions as values, recursion, loops ------------------------------------


def closure_capture(x):
    k = x * x

    def scale(y):
        return y * k

    return scale(x) + scale(2.0)


def closure_two_levels(x, y):
    def outer(a):
        def inner(b):
            return a * b + x * y

        return inner(a + y)

    return outer(x * 2.0)


def h_apply_twice(f, x):
    return f(f(x))


def function_as_argument(x, y):
    return h_apply_twice(lambda v: v * y + np.sin(v), x)


def h_make_scaler(k):
    return lambda v: v * k


def function_returned(x, y):
    f = h_make_scaler(x * y)
    g = h_make_scaler(np.exp(x))
    return f(y) + g(f(2.0))


def h_compose(f, g):
    return lambda v: f(g(v))


def composed(x):
    return h_compose(lambda v: np.tanh(v), lambda v: v * x)(1.5) + \
        h_compose(lambda v: v * v, lambda v: np.cos(v * x))(x)


def h_power(x, n):
    if n == 0:
        return 1.0
    return x * h_power(x, n - 1)


def recursion(x):
    return h_power(x, 5) + h_power(x * 2.0, 3)


def h_even_sum(x, n):
    if n == 0:
        return x
    return h_odd_sum(x * 1.1, n - 1) + x


def h_odd_sum(x, n):
    if n == 0:
        return -x
    return h_even_sum(np.sin(x), n - 1) * x


def mutual_recursion(x):
    return h_even_sum(x, 5) + h_odd_sum(x, 4)


def recursion_on_array(v):
    if v.shape[0] == 1:
        return v[0] ** 2
    return v[0] * recursion_on_array(v[1:]) + np.sum(v)


def while_data_dependent(x):
    n = 0
    while x < 10.0:
        x = x * 1.5 + 0.1
        n = n + 1
    return x * n


def while_nested(x, y):
    i = 0
    total = 0.0
    while i < 3:
        j = 0
        while total < 5.0 * (i + 1) and j < 4:
            total = total + x * y + j
            j = j + 1
        i = i + 1
    return total


def for_loop(x, w):
    h = x
    for i in range(4):
        h = np.tanh(h * w + i)
    return np.sum(h)


def for_over_array_rows(m):
    acc = 0.0
    for row in m:
        acc = acc + np.sum(row) * row[0]
    return acc


def loop_break_continue(xs, t):
    total = 0.0
    for x in xs:
        if x < 0.0:
            continue
        if x * t > 3.0:
            break
        total = total + x * t
    return total


def loop_early_return(xs, t):
    for x in xs:
        if x * t > 2.0:
            return x * t * t
    return t


def while_early_return(x):
    k = 0
    while True:
        x = np.cos(x) + x * 0.5
        k = k + 1
        if k > 3:
            return x * x


def for_else(xs, t):
    acc = t
    for x in xs:
        if x > 100.0:
            break
        acc = acc * x
    else:
        acc = acc + 1.0
    return acc


def list_comprehension(xs, t):
    ys = [x * t for x in xs if x > 0.0]
    zs = [np.sin(y) * y for y in ys]
    return sum(zs) + sum([a * b for a, b in zip(xs, ys)])  # noqa: B905 (unequal lengths)


def comprehension_enumerate_reversed(xs):
    a = sum([i * x * x for i, x in enumerate(xs)])
    b = sum([x * (k + 1.0) for k, x in enumerate(reversed(xs))])
    return a + b + sorted(xs)[0] * 10.0


def iterator_builtins(xs):  # tapeless's zip takes no strict=
    a = sum(reversed(xs)) * 2.0 + max(reversed(xs)) + min(enumerate(xs))[1]
    b = sum([u * v for u, v in zip(xs, reversed(xs))])  # noqa: B905
    return a + b + sum(sorted(xs)[1:]) + list(zip(xs, xs))[0][1] * 3.0  # noqa: B905


def dict_building(x, y):
    d = {"a": x * y, "b": np.sin(x)}
    e = {k: v * 2.0 for k, v in d.items()}
    f = dict(zip(["p", "q"], [x, y]))  # noqa: B905 (tapeless: no strict=)
    total = 0.0
    for k in d:
        total = total + d[k] * e[k]
    return total + f["p"] * f["q"] + sum(e.values()) + d.get("c", y)


def conditional_expressions(x, y):
    a = x * y if x > y else x - y
    b = max(x, y) * min(x * 2.0, y) + abs(x - 3.0 * y)
    return a + b + (x or y) * 2.0


def tuples_and_unpacking(x, y):
    a, (b, c) = x * 2.0, (y, x * y)
    a, b = b, a
    pair = (a, b) + (c,)
    return pair[0] * pair[1] + pair[-1] + sum(pair)


def math_functions(x):
    return math.sin(x) * math.exp(x / 2.0) + math.log(x + 3.0) + math.sqrt(x * x + 1.0) + \
        math.atan2(x, 2.0) + math.hypot(x, 3.0) + math.pow(x + 2.0, 1.5)


PROGRAMS = {
    "closure_capture": (closure_capture, (0.7,)),
    "closure_two_levels": (closure_two_levels, (0.7, -0.4)),
    "function_as_argument": (function_as_argument, (0.7, 1.3)),
    "function_returned": (function_returned, (0.3, 0.9)),
    "composed": (composed, (0.6,)),
    "recursion": (recursion, (0.9,)),
    "mutual_recursion": (mutual_recursion, (0.4,)),
    "recursion_on_array": (recursion_on_array, (np.array([0.5, -1.0, 2.0, 0.25]),)),
    "while_data_dependent": (while_data_dependent, (1.3,)),
    "while_nested": (while_nested, (0.9, 1.1)),
    "for_loop": (for_loop, (np.array([0.1, -0.3]), 0.8)),
    "for_over_array_rows": (for_over_array_rows, (np.array([[1.0, 2.0], [-0.5, 0.3]]),)),
    "loop_break_continue": (loop_break_continue, ([1.0, -2.0, 0.5, 2.0, 4.0], 1.1)),
    "loop_early_return": (loop_early_return, ([0.5, 1.0, 3.0], 0.9)),
    "while_early_return": (while_early_return, (0.3,)),
    "for_else": (for_else, ([1.5, 0.5], 0.7)),
    "list_comprehension": (list_comprehension, ([1.0, -0.5, 2.0], 0.8)),
    "comprehension_enumerate_reversed": (comprehension_enumerate_reversed, ([0.4, -1.2, 0.9],)),
    "iterator_builtins": (iterator_builtins, ([0.4, -1.2, 0.9, 2.0],)),
    "dict_building": (dict_building, (0.6, 1.7)),
    "conditional_expressions": (conditional_expressions, (0.6, 0.9)),
    "tuples_and_unpacking": (tuples_and_unpacking, (0.6, 0.9)),
    "math_functions": (math_functions, (0.8,)),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_gradient(name: str) -> None:
    fn, args = PROGRAMS[name]
    argnums = tuple(i for i, a in enumerate(args) if _differentiable_arg(a))
    grads = tl.grad(fn, argnums)(*args)
    for i, g in zip(argnums, grads, strict=True):
        assert_same_structure(g, args[i], f"{name}: d/d arg{i}")
    check_directional(grads, fn, args, argnums, np.random.default_rng(3), what=name)
    assert tl.jit(fn)(*args) == pytest.approx(fn(*args), rel=1e-12)


def test_while_trip_count_depends_on_data() -> None:
    """Different starting points run different numbers of iterations; each gradient
    is that of the iterations actually run."""
    for x0 in (0.5, 3.0, 9.0, 12.0):
        x, n, slope = x0, 0, 1.0
        while x < 10.0:
            x, n, slope = x * 1.5 + 0.1, n + 1, slope * 1.5
        assert tl.grad(while_data_dependent)(x0) == pytest.approx(n * slope, rel=1e-12)


def test_closure_gradient_flows_to_captured_value() -> None:
    # closure_capture(x) = x * x^2 + 2 x^2  ->  3 x^2 + 4 x
    assert tl.grad(closure_capture)(0.7) == pytest.approx(3 * 0.49 + 4 * 0.7, rel=1e-14)


def test_gradient_of_a_lambda_and_of_jit() -> None:
    f = lambda x, y: x * np.sin(y)  # noqa: E731
    assert tl.grad(f, 1)(2.0, 0.5) == pytest.approx(2.0 * math.cos(0.5), rel=1e-14)
    assert tl.grad(tl.jit(recursion))(0.9) == tl.grad(recursion)(0.9)


def test_recursion_gradient_is_exact() -> None:
    # recursion(x) = x^5 + 8 x^3
    assert tl.grad(recursion)(0.9) == pytest.approx(5 * 0.9 ** 4 + 24 * 0.81, rel=1e-14)


# --- regressions, and known bugs (strict xfails with minimal repros) -----------------------


def h_sum_all(*xs):
    total = 0.0
    for x in xs:
        total = total + x
    return total


def call_star_varargs(a, b):
    args = (a, b)
    return h_sum_all(*args) * b


def test_call_star_into_varargs_function() -> None:
    assert tl.grad(call_star_varargs, (0, 1))(2.0, 3.0) == (3.0, 2.0 + 2 * 3.0)


def h_scaled(x, *, k=3.0):
    return k * x * x


def h_apply2(f, a, b):
    return f(a, b)


def varargs_through_value(x):
    return h_apply(h_sum_all, x) * x


def kwonly_through_value(x):
    return h_apply(h_scaled, x)


def varargs_through_value2(a, b):
    return h_apply2(h_sum_all, a * b, b)


def test_inlined_call_through_value_rebinds_varargs() -> None:
    # Inlining h_apply makes `f(x)` a call of the known graph h_sum_all: its argument
    # must be packed into the `*xs` tuple.
    assert tl.jit(varargs_through_value)(2.0) == 4.0


def test_functions_with_varargs_or_kwonly_parameters_as_values() -> None:
    assert tl.grad(varargs_through_value)(2.0) == 4.0
    assert tl.grad(kwonly_through_value)(2.0) == 12.0
    assert tl.grad(varargs_through_value2, (0, 1))(2.0, 3.0) == (3.0, 3.0)
    assert tl.grad(tl.grad(kwonly_through_value))(2.0) == 6.0
    assert tl.grad(tl.grad(varargs_through_value2, 0), 1)(2.0, 3.0) == 1.0


def h_fold(f, acc, xs):
    for x in xs:
        acc = f(acc, x)
    return acc


def fold_squares(xs):
    return h_fold(lambda a, b: a + b * b, 0.0, xs)


def test_loop_calling_closure_saves_each_iteration() -> None:
    assert tl.grad(fold_squares)([1.0, 2.0, 3.0]) == [2.0, 4.0, 6.0]


class Phase(NamedTuple):
    pos: Any
    vel: Any
    steps: int = 0


def test_vjp_of_while_loop_over_namedtuple_state() -> None:
    integrate = rk_integrate_state  # a while loop over NamedTuple state
    _, vjp_fn = tl.vjp(integrate, 1.0, 0.0, 20)
    got = vjp_fn((1.0, None, None))[:2]
    expected = tl.grad(lambda p, v: integrate(p, v, 20)[0], (0, 1))(1.0, 0.0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def h_apply(f, x):
    return f(x)


def primitive_as_value(x):
    return h_apply(np.cos, x)


def test_primitive_passed_as_value() -> None:
    assert tl.jit(primitive_as_value)(0.5) == math.cos(0.5)
    assert tl.grad(primitive_as_value)(0.5) == -math.sin(0.5)
    assert tl.grad(tl.grad(primitive_as_value))(0.5) == pytest.approx(-math.cos(0.5))


def h_build(cls, a):
    return cls(a, a * 2.0)


def class_passed_as_value(a):
    return h_build(Params, a).b


def h_build_star(cls, a):
    args = (a, a * 2.0)
    return cls(*args)


def namedtuple_with_default_passed_as_value(a):
    s = h_build_star(Phase, a)
    return s.vel * s.pos + s.steps


def test_class_passed_as_value() -> None:
    assert tl.jit(class_passed_as_value)(1.5) == 3.0
    assert tl.grad(class_passed_as_value)(1.5) == 2.0
    assert tl.grad(namedtuple_with_default_passed_as_value)(1.5) == 6.0
    assert tl.grad(tl.grad(namedtuple_with_default_passed_as_value))(1.5) == 4.0


def h_make_or_keep(cls, x, y):
    if isinstance(x, (cls, str)):
        return x
    return cls(x, y)


def isinstance_of_class_parameter(a):
    p = h_make_or_keep(Params, a, a * a)
    q = h_make_or_keep(Params, p, 1.0)
    r = h_make_or_keep(Phase, q.w, q.b)
    return r.pos * r.vel + (1.0 if isinstance(q, Params) else 0.0)


def h_convert(cls, x):
    if isinstance(x, cls):
        return x * 2.0
    return cls(x) * 3.0


def isinstance_of_builtin_class_parameter(a):
    t = 0.0
    for i in h_apply(range, 3):
        t = t + a * i
    return h_convert(float, a) + h_convert(float, 2) * a + t


@pytest.mark.parametrize("opt", ["", "0"])
def test_isinstance_of_a_class_passed_as_value(opt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # In derivative code a class passed as a value is a J-callable; J of isinstance
    # tests against the class it stands for (runtime.class_of).
    monkeypatch.setenv("TAPELESS_OPTIMIZE", opt)
    f = isinstance_of_class_parameter  # a^3 + 1
    assert tl.jit(f)(1.5) == f(1.5)
    assert tl.grad(f)(1.5) == pytest.approx(3 * 1.5 ** 2)
    assert tl.grad(tl.grad(f))(1.5) == pytest.approx(6 * 1.5)
    g = isinstance_of_builtin_class_parameter  # 2a + 6a + 3a
    assert tl.jit(g)(1.5) == g(1.5)
    assert tl.grad(g)(1.5) == pytest.approx(11.0)
    assert tl.grad(tl.grad(g))(1.5) == pytest.approx(0.0)


def h_is_float(c, x):
    return x * 2.0 if c is float else x


def h_call_if_float(c, x):
    return c(x) * 2.0 if c == float else x  # noqa: E721  (== against a class, on purpose)


def h_ones_of(dt, x):
    return np.sum(np.ones(3, dtype=dt) * x)


def h_astype(c, x):
    return np.sum(x.astype(c) * x)


@pytest.mark.parametrize("opt", ["", "0"])
def test_a_class_passed_as_value_stays_a_class(opt: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Compared with `is` or `==`, or used as a dtype, a class passed as a value is the
    # class, in derivative code too (only a callee that calls it gets a J-callable).
    monkeypatch.setenv("TAPELESS_OPTIMIZE", opt)
    assert tl.grad(lambda x: h_is_float(float, x))(1.5) == 2.0
    assert tl.grad(lambda x: h_call_if_float(float, x))(1.5) == 2.0
    assert tl.grad(lambda x: h_ones_of(np.float64, x))(1.5) == 3.0
    np.testing.assert_array_equal(tl.grad(lambda x: h_astype(np.float64, x))(np.ones(2)),
                                  [2.0, 2.0])


def h_dtype_and_call(dt, x):
    # Called (a J-callable in derivative code) and used as a dtype (the class).
    return np.sum(np.ones(3, dtype=dt) * x) + dt(2.0) * np.sum(np.asarray(x, dtype=dt), dtype=dt)


def h_passes_on(dt, x):
    return h_ones_of(dt, x) * dt(3.0) + np.sum(np.full(2, x, dtype=dt))


@pytest.mark.parametrize("opt", ["", "0"])
def test_a_class_called_and_used_as_a_dtype(opt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPELESS_OPTIMIZE", opt)
    for dt in (float, np.float64):
        f = lambda x, dt=dt: h_dtype_and_call(dt, x)  # noqa: E731  (3x + 2x)
        g = lambda x, dt=dt: h_passes_on(dt, x)  # noqa: E731  (9x + 2x)
        assert tl.jit(f)(1.5) == f(1.5) and tl.jit(g)(1.5) == g(1.5)
        assert tl.grad(f)(1.5) == pytest.approx(5.0)
        assert tl.grad(g)(1.5) == pytest.approx(11.0)
        assert tl.grad(tl.grad(g))(1.5) == pytest.approx(0.0)


def applied_twice(x, f, c):
    # A function and a class passed as arguments to the function differentiated.
    return np.sum(f(f(x))) * c(2.0)


def cube(v):
    return v * v * v


cube_grad = tl.grad(cube)
cube_jit = tl.jit(cube)


class Scaler:
    def __init__(self, k):
        self.k = k

    def apply(self, v):
        return v * self.k


@pytest.mark.parametrize("opt", ["", "0"])
def test_functions_passed_as_arguments(opt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A function, a class or a tapeless transform passed to the differentiated function is
    bound into its derivative code by identity (compiled once per function)."""
    monkeypatch.setenv("TAPELESS_OPTIMIZE", opt)
    x = np.array([0.3, -0.8])

    def check(f, c, second, on_arrays=True):
        if on_arrays:
            want = elementwise_fd(lambda v: applied_twice(v, f, c), x)
            np.testing.assert_allclose(tl.grad(applied_twice)(x, f, c), want, rtol=1e-6)
            value, g = tl.value_and_grad(applied_twice)(x, f, c)
            assert value == pytest.approx(applied_twice(x, f, c))
            np.testing.assert_allclose(g, want, rtol=1e-6)
            np.testing.assert_allclose(tl.jit(tl.grad(applied_twice))(x, f, c), want,
                                       rtol=1e-6)
        # d2/da2 of c(2) * f(f(a)) at 0.3, with f and c passed to both gradients
        assert tl.grad(tl.grad(applied_twice))(0.3, f, c) == pytest.approx(second, rel=1e-5)

    s = Scaler(3.0)
    check(np.tanh, float, 2.0 * _second_tanh_tanh(0.3))
    check(cube, float, 2.0 * 72 * 0.3 ** 7)  # f(f(a)) = a^9
    check(cube_jit, np.float64, 2.0 * 72 * 0.3 ** 7)
    check(cube_grad, float, 2.0 * 324 * 0.3 ** 2, on_arrays=False)  # 3(3a^2)^2 = 27a^4
    check(lambda v: v * 2.0, float, 0.0)
    with pytest.raises(tl.GradError, match="argument 1 is <bound method.*a function taking"):
        tl.grad(applied_twice)(x, s.apply, float)


def _second_tanh_tanh(a: float, eps: float = 1e-4) -> float:
    f = lambda v: math.tanh(math.tanh(v))  # noqa: E731
    return (f(a + eps) - 2 * f(a) + f(a - eps)) / eps ** 2


def test_functions_passed_as_arguments_compile_once_each() -> None:
    g = tl.grad(applied_twice)
    x = np.ones(2)
    g(x, np.tanh, float)
    g(x, np.tanh, float)
    assert g.compile_count == 1
    g(x, np.sin, float)
    assert g.compile_count == 2


def test_functions_in_containers_or_differentiated_are_refused() -> None:
    with pytest.raises(tl.GradError, match="container holding a function"):
        tl.grad(lambda x, fs: fs[0](x))(1.0, (np.tanh,))
    with pytest.raises(tl.GradError, match="argument 1 is a container holding a function"):
        tl.grad(lambda x, fs: fs["f"](x))(1.0, {"f": np.tanh, "g": 2.0})
    with pytest.raises(tl.GradError, match="container holding a function"):
        tl.grad(lambda x, fs: fs[0][0](x))(1.0, [(np.tanh,)])
    with pytest.raises(tl.GradError, match="container holding a function"):
        tl.jit(tl.grad(lambda x, fs: fs[0](x)))(1.0, (np.tanh,))
    with pytest.raises(tl.GradError, match="a function or a class"):
        tl.grad(h_apply)(np.tanh, 1.0)


def uses_global_transforms(v):
    return cube_grad(v) + cube_jit(v)  # 3v^2 + v^3


def test_a_global_transform_is_the_transform() -> None:
    assert tl.jit(uses_global_transforms)(2.0) == 20.0
    assert tl.grad(uses_global_transforms)(2.0) == pytest.approx(6 * 2.0 + 3 * 4.0)


def h_apply3(f, a, b, c):
    return f(a, b, c)


def variadic_primitives_as_values(x):
    e = h_apply3(np.einsum, "i,i->", x, x * x)
    m = h_apply2(max, x[0], x[1]) + 2.0 * h_apply2(min, x[0], x[1])
    return e + m + h_apply(max, x) + h_apply2(np.hypot, x[0], x[1]) + h_apply(np.sum, x)


@pytest.mark.parametrize("opt", ["", "0"])
def test_variadic_primitives_passed_as_values(opt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Python passes the arguments one by one; they are bound to the primitive's
    # parameters (`*operands` packed, defaults filled in), and the sensitivities go
    # back one per argument passed.
    monkeypatch.setenv("TAPELESS_OPTIMIZE", opt)
    x = np.array([0.7, 1.3])
    f = variadic_primitives_as_values
    assert tl.jit(f)(x) == pytest.approx(f(x))
    g = tl.grad(f)
    np.testing.assert_allclose(g(x), elementwise_fd(f, x), rtol=1e-6)
    hess_row = tl.grad(lambda v: tl.grad(variadic_primitives_as_values)(v)[0])
    np.testing.assert_allclose(hess_row(x), elementwise_fd(lambda v: g(v)[0], x), rtol=1e-5,
                               atol=1e-7)


def h_call_star(f, args):
    return f(*args)


def scale(x, k=2.0):
    return x * k


def defaults_through_a_value(a):
    args = (a,)
    xs = [a * a]
    return h_call_star(scale, args) * args[0] + h_call_star(scale, xs) + sum(xs)


@pytest.mark.parametrize("opt", ["", "0"])
def test_defaults_filled_in_through_a_value(opt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # `scale(a)` called through a value: one sensitivity per argument passed, none for
    # the defaulted `k` (which made the sensitivity of `args` one too long).
    monkeypatch.setenv("TAPELESS_OPTIMIZE", opt)
    f = defaults_through_a_value  # 2 a^2 + 3 a^2
    assert tl.grad(f)(1.5) == pytest.approx(15.0)
    assert tl.grad(tl.grad(f))(1.5) == pytest.approx(10.0)


def test_backend_if_statement_with_one_tuple_branches() -> None:
    from tapeless.backend.pygen import compile_graph
    from tapeless.ir.nodes import Constant, Graph
    from tapeless.primitives import PRIMITIVES as P

    g = Graph("f")
    x = g.add_parameter("x")
    c = g.add_parameter("c")
    gt = Graph("if_true", g)
    gt.output = gt.apply(P["make_tuple"], Constant(0.0))
    gf = Graph("if_false", g)
    t = gf.apply(P["mul"], x, Constant(3.0), name="t")
    gf.output = gf.apply(P["make_tuple"], gf.apply(P["mul"], t, t))
    call = g.apply(g.apply(P["switch"], c, Constant(gt), Constant(gf)))
    r = g.apply(P["tuple_getitem"], call, Constant(0), name="r")
    g.output = g.apply(P["make_tuple"], g.apply(P["make_tuple"]), r)
    assert compile_graph(g).fn(2.0, False) == ((), 36.0)
