"""Checkpointed loops on the native backend (`backend/native_checkpoint.py`): a gradient's
`for` loop that `tl.config.loop_checkpoint` makes `checkpoint_for` / `checkpoint_while`
runs as native code, with the Python backend's schedule: the same gradients (to 1e-12,
the native backend's tolerance), memory that grows like log(n), and a located reason
where a pair is not lowered."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import scipy.special

pytest.importorskip("numba")

from peak_memory import peak_bytes  # noqa: E402
from test_corpus import assert_same  # noqa: E402
from test_loop_checkpoint import nested, rk4, scalar_loop, strided  # noqa: E402

import tapeless as tl  # noqa: E402
from tapeless.backend import native  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A cache directory of the session's own, native code kept even where it is no
    faster (its results are what is compared), and the loop settings restored."""
    mode, memory = tl.config.loop_checkpoint, tl.config.loop_memory
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAPELESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        patch.delenv("NUMBA_CACHE_DIR", raising=False)
        patch.setenv("TAPELESS_NATIVE_SPEED_CHECK", "0")
        yield
    tl.config.loop_checkpoint, tl.config.loop_memory = mode, memory


@pytest.fixture(autouse=True)
def _loop_settings() -> Iterator[None]:
    mode, memory = tl.config.loop_checkpoint, tl.config.loop_memory
    yield
    tl.config.loop_checkpoint, tl.config.loop_memory = mode, memory


def _with(mode: str, memory: int = 1 << 30) -> None:
    tl.config.loop_checkpoint, tl.config.loop_memory = mode, memory


def _entry(transformed: Any, *args: Any) -> native.NativeFunction:
    entry = transformed._get(transformed.bind(args, {})).fn
    assert isinstance(entry, native.NativeFunction)
    return entry


def _lowered(transformed: Any, *args: Any) -> str:
    return native.native_source(transformed._get(transformed.bind(args, {})))


def _rk4_args(n: int) -> tuple:
    rng = np.random.default_rng(0)
    return (rng.normal(size=(6, 6)) / 3, rng.normal(size=6), n)


def _strided_args(n: int) -> tuple:
    rng = np.random.default_rng(1)
    return (rng.normal(size=5), rng.normal(size=5), n)


def _nested_args(n: int) -> tuple:
    rng = np.random.default_rng(2)
    return (rng.normal(size=(4, 4)) / 2, rng.normal(size=4), n)


# rk4: one array of state; strided: a float, an int and an array of state, a negative
# step, two loops in a row; nested: an inner loop whose stack is saved on the outer's.
CASES = [(rk4, _rk4_args), (strided, _strided_args), (nested, _nested_args)]


def _close(expected: Any, actual: Any) -> None:
    """Equal to 1e-12 of the largest magnitude of each result."""
    for e, a in zip(expected, actual, strict=True):
        assert type(a) is type(e)
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12 * np.max(np.abs(e)))


# The most steps at which the native gradient is compared with the Python backend's:
# strided's gradient in x is a sum of terms about 1e5 times larger than itself, which
# NumPy's and Numba's `tanh` and `sin`, a last bit apart, leave 1e-11 of it apart after
# 64 steps, checkpointed or not (native against native is checked at all steps).
PYTHON_UP_TO = {rk4: 64, strided: 7, nested: 64}


@pytest.fixture(scope="module")
def saving_all(_settings: None) -> dict:
    """The native gradients that save every iteration (`loop_checkpoint = "never"`,
    read when they compile: at their first call)."""
    mode, memory = tl.config.loop_checkpoint, tl.config.loop_memory
    tl.config.loop_checkpoint = "never"
    try:
        made = {fn: tl.grad(fn, argnums=(0, 1), backend="native") for fn, _ in CASES}
        for fn, make in CASES:
            # (First called as the checkpointed ones are, with no iteration: the first
            # call's check against the Python backend then passes for strided too, whose
            # gradient at 3 steps native code gives a few 1e-12 apart.)
            made[fn](*make(0))
            assert _entry(made[fn], *make(0)).is_native
        return made
    finally:
        tl.config.loop_checkpoint, tl.config.loop_memory = mode, memory


@pytest.mark.parametrize("fn, make", CASES, ids=["rk4", "strided", "nested"])
@pytest.mark.parametrize("memory", [0, 300, 1 << 30])
def test_same_gradient_as_the_python_backend(fn, make, memory, saving_all) -> None:
    """Every segment length: 0 bytes (a segment of one iteration), a few iterations, and
    all of them (the forward loop keeps its saved values, as without checkpointing).
    Against the Python backend's checkpointed gradient, and against the native gradient
    that saves everything: the same operations in the same order, though not always to
    the bit (the bodies are functions there, not inlined into one loop: Numba compiles
    some sums apart, a unit in the last place apart)."""
    _with("always", memory)
    python = tl.grad(fn, argnums=(0, 1))
    compiled = tl.grad(fn, argnums=(0, 1), backend="native")
    for n in (0, 1, 2, 7, 64):
        args = make(n)
        got = compiled(*args)
        if n <= PYTHON_UP_TO[fn]:
            _close(python(*args), got)
        assert _entry(compiled, *args).is_native, _entry(compiled, *args).fallback
        for g, e in zip(got, saving_all[fn](*args), strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-14, atol=1e-14 * np.max(np.abs(e)))
    source = _lowered(compiled, *make(3))
    assert "checkpoint_for" not in source and "_nt_ck1_fwd" in source
    assert "_nt_ck1_snapshots" in source
    assert "_nt_ck" not in _lowered(saving_all[fn], *make(3))


def test_scalar_state_and_module_level_bodies() -> None:
    """A loop whose bodies need no captures (functions of the module, not closures)."""
    _with("always", 100)
    python = tl.value_and_grad(scalar_loop)
    compiled = tl.value_and_grad(scalar_loop, backend="native")
    for n in (3, 50, 0):
        # (values: with no iteration the Python backend's value is the float argument,
        # with some a NumPy float; native code keeps the first call's type)
        (value, grad), (value_py, grad_py) = compiled(0.4, n), python(0.4, n)
        assert value == pytest.approx(value_py, rel=1e-12)
        assert grad == pytest.approx(grad_py, rel=1e-12)
    assert _entry(compiled, 0.4, 3).is_native


def test_value_and_grad_and_vjp() -> None:
    args = _rk4_args(40)
    _with("always", 500)
    python = tl.value_and_grad(rk4, argnums=(0, 1))(*args)
    compiled = tl.value_and_grad(rk4, argnums=(0, 1), backend="native")
    assert_same(python, compiled(*args))
    assert _entry(compiled, *args).is_native
    out, vjp_native = tl.vjp(rk4, *args, backend="native")
    out_py, vjp_py = tl.vjp(rk4, *args)
    assert_same(out_py, out)
    for seed in (1.0, -0.5):  # (the saved snapshot is read again by a second call)
        assert_same(vjp_py(seed), vjp_native(seed))


def test_second_order_through_a_checkpointed_loop() -> None:
    args = _rk4_args(5)
    v = np.linspace(-1.0, 1.0, 6)

    def hvp(x):
        return np.dot(tl.grad(rk4, argnums=1)(args[0], x, args[2]), v)

    _with("never")
    expected = tl.grad(hvp)(args[1])
    _with("always", 200)
    compiled = tl.grad(hvp, backend="native")
    np.testing.assert_allclose(compiled(args[1]), expected, rtol=1e-12, atol=1e-14)


def test_memory_grows_like_log_n() -> None:
    """(tracemalloc sees the arrays native code allocates: Numba's runtime allocates
    through Python's allocator.)"""
    rng = np.random.default_rng(3)
    A, y0 = rng.normal(size=(16, 16)) / 4, rng.normal(size=16)
    _with("always", 20_000)
    g = tl.grad(rk4, backend="native")
    small, large = peak_bytes(g, A, y0, 256), peak_bytes(g, A, y0, 4096)
    assert _entry(g, A, y0, 256).is_native
    _with("never")
    g_plain = tl.grad(rk4, backend="native")
    plain_small, plain_large = peak_bytes(g_plain, A, y0, 256), peak_bytes(g_plain, A, y0, 4096)
    assert plain_large > 10 * plain_small
    # The budget, plus a snapshot per halving (4 more of them).
    assert large < small + 8_000
    assert large < plain_large / 10


def test_auto_checkpoints_a_loop_proven_too_large_on_native() -> None:
    A, y0 = _rk4_args(0)[:2]

    def fixed(A, y0):
        return rk4(A, y0, 200)

    _with("auto", 10_000)  # 200 iterations of 4 saved vectors: more than 10 kB
    checkpointed = tl.grad(fixed, backend="native")
    assert_same(tl.grad(fixed)(A, y0), checkpointed(A, y0))
    assert _entry(checkpointed, A, y0).is_native
    assert "_nt_ck1_snapshots" in _lowered(checkpointed, A, y0)


def horner(c, x, y):
    """A loop reading one element of `c` per step: its backward body adds the element's
    sensitivity onto an accumulator it was given (`scatter_onto`, native: into a copy)."""
    pred = np.zeros_like(x)
    for k in range(c.shape[0] - 1, -1, -1):
        pred = pred * x + c[k]
    r = pred - y
    return np.sum(r * r) / x.shape[0]


def test_element_reads_in_a_checkpointed_loop() -> None:
    rng = np.random.default_rng(5)
    args = (rng.standard_normal(9) * 0.1, rng.uniform(-1.0, 1.0, 200),
            rng.standard_normal(200))
    _with("always", 3000)  # (an iteration saves two arrays of 200: a segment of one)
    compiled = tl.grad(horner, backend="native")
    assert "scatter_onto" in compiled.source_for(*args)
    expected = tl.grad(horner)(*args)
    for _ in range(2):  # (the accumulator handed in is not changed in place)
        _close((expected,), (compiled(*args),))
    assert _entry(compiled, *args).is_native, _entry(compiled, *args).fallback


# --- what is not lowered ---------------------------------------------------------------

_PAIR = """\
def f(x, n):
    def B_body(stack, d_x, *, x=x):
        rest = stack[1]
        return rest, d_x * stack[0]
    def J_body(i, y, stack_1, *, x=x):
        y = y * x
        stack_1 = y, stack_1
        return y, stack_1
    t = _rt.checkpoint_for(0, n, 1, J_body, 1, 300, (x, None))
    stack_2 = t[1]
    t_1 = _rt.checkpoint_while(B_cond, B_body, 0, (stack_2, 1.0))
    return t_1[1]

def B_cond(stack_3, _1):
    return stack_3 is not None
"""


def _refusal(source: str) -> tuple[str, int | None]:
    with pytest.raises(native._Refused) as refused:
        native.lower_source(source)
    return refused.value.reason, refused.value.line


def test_the_lowering_rewrites_a_pair_into_native_loops() -> None:
    tree, _ = native.lower_source(_PAIR)
    text = ast.unparse(tree)
    assert "checkpoint" not in text.replace("_nt_ck", "")
    assert "def _nt_ck1_fwd(i, y, _nt_captures)" in text
    assert "def _nt_ck1_back(stack, d_x, _nt_captures)" in text
    # (As CPython runs it, with the runtime's ZERO and its helper: the Python backend's
    # checkpoint_for gives the same.)
    from tapeless import runtime

    namespace: dict[str, Any] = {"_rt": runtime, "_nt_saved_bytes": lambda v, d: 32,
                                 "np": np}
    exec(compile(ast.fix_missing_locations(tree), "<lowered>", "exec"), namespace)  # noqa: S102
    reference: dict[str, Any] = {"_rt": runtime}
    exec(_PAIR, reference)  # noqa: S102
    for n in (0, 1, 5, 40):
        assert namespace["f"](1.01, n) == pytest.approx(reference["f"](1.01, n), rel=1e-15)


def test_a_push_inside_a_branch_is_refused_at_the_body() -> None:
    source = _PAIR.replace("        stack_1 = y, stack_1\n",
                           "        if i > 2:\n            stack_1 = y, stack_1\n")
    reason, line = _refusal(source)
    assert "checkpointed loop" in reason and "push on its stack once" in reason
    assert line == 7  # (the `if`)


def test_a_backward_loop_elsewhere_is_refused_at_the_forward_loop() -> None:
    source = _PAIR.replace("    t_1 = _rt.checkpoint_while(B_cond, B_body, 0, (stack_2, 1.0))\n"
                           "    return t_1[1]\n",
                           "    return g(stack_2)\n\n"
                           "def g(stack_2):\n"
                           "    t_1 = _rt.checkpoint_while(B_cond, B_body, 0, (stack_2, 1.0))\n"
                           "    return t_1[1]\n")
    reason, line = _refusal(source)
    assert "backward loop is not in the block of its forward loop" in reason
    assert line == 9


def test_a_condition_that_does_not_test_the_stack_is_refused() -> None:
    reason, line = _refusal(_PAIR.replace("return stack_3 is not None", "return _1 > 0.0"))
    assert "does not pop its stack until it is empty" in reason
    assert line == 14


def test_a_body_numba_cannot_type_falls_back_with_its_line() -> None:
    """A checkpointed loop whose body Numba cannot compile: the whole gradient runs on
    the Python backend, and says where."""
    _with("always", 0)
    g = tl.grad(_special_in_loop, backend="native")
    assert g(0.5, 4) == tl.grad(_special_in_loop)(0.5, 4)
    entry = _entry(g, 0.5, 4)
    assert not entry.is_native and entry.fallback is not None
    assert "SciPy" in entry.fallback.reason
    assert entry.fallback.where is not None and entry.fallback.where.filename == __file__
    assert entry.fallback.where.line == _special_in_loop.__code__.co_firstlineno + 2


def _special_in_loop(x, n):
    for _ in range(n):
        x = np.tanh(x) + scipy.special.erf(x)
    return x
