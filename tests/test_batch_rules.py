"""Every primitive's batching rule (`tapeless.primitives.batch_rules`, for `tl.vmap`),
checked against a Python loop over the batch. Generated from the registry.

A primitive either has a batching rule of its own (one of the generic rules chosen by
its declared properties, a rule written for it, or a case of the V transform itself,
`IN_TRANSFORM`), or is declared to run once per element (`PER_ELEMENT`, with the
reason); a primitive that is neither fails `test_every_primitive_has_a_batching_rule`.

Each primitive is called as its samples say (the `SAMPLES` of `test_primitive_rules.py`,
the argument generators the derivative tests use; `EXTRA_SAMPLES` below for the
primitives that have no derivative and so no sample there). For each sample, three
draws give three examples; the arguments holding data (floats, arrays: never a Python
int, which may be an axis) are batched:

- all of them along axis 0 (`in_axes=0`),
- all of them along their last axis (the batch axis moved last, `in_axes=-1`),
- one of them at a time, the others unbatched (`in_axes=None`: the first example's),

and `tl.vmap` of the call must equal stacking the call's results over the examples
(exact for ints and bools, 1e-12 for floats). The default run (CI) takes each
primitive's first sample in every mode; `pytest -m slow tests/test_batch_rules.py` runs
the others too. A primitive with a rule of its own but no
sample with data to batch fails too: add samples when you add a primitive. Primitives
declared per element run along axis 0 only (their rule is the loop); random draws are
checked against a loop in tests/test_vmap.py (a loop's numbers where the function draws
once, which these samples, seeding first, do not do)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gradcheck import load_source
from test_primitive_rules import (
    SAMPLES,
    Sample,
    away,
    binary,
    call_source,
    distinct,
    header,
    u,
    unary,
)

import tapeless as tl
from tapeless.ad.batch import VmapError
from tapeless.primitives import PRIMITIVES
from tapeless.primitives import batch_rules as br
from tapeless.runtime import ZERO, tree_leaves, tree_unflatten

S = Sample
BATCH_SIZE = 3


def _ints(r: np.random.Generator, shape: tuple | None, lo: int = 0, hi: int = 8) -> Any:
    if shape is None:  # (a NumPy integer: data, where a Python int may be an axis)
        return np.int64(r.integers(lo, hi))
    return r.integers(lo, hi, size=shape)


def _with_ties(r: np.random.Generator, shape: tuple | None) -> Any:
    """Values on a coarse grid (equal elements and exact halves occur)."""
    if shape is None:
        return float(r.integers(-4, 5)) / 2
    return r.integers(-4, 5, size=shape) / 2


def _int_binary(lo: int = 0, hi: int = 8) -> list[Sample]:
    return [S(lambda r, s=s: (_ints(r, s[0], lo, hi), _ints(r, s[1], lo, hi)), label=str(s))
            for s in [(None, None), ((3,), None), ((2, 3), (3,))]]


def _int_unary() -> list[Sample]:
    return [S(lambda r, s=s: (_ints(r, s, -8, 8),), label=str(s)) for s in [None, (2, 3)]]


def _grid_unary(shapes: list | None = None) -> list[Sample]:
    return unary(gen=lambda r, s, lo, hi: _with_ties(r, s), shapes=shapes)


def _bools(r: np.random.Generator, shape: tuple) -> np.ndarray:
    return u(r, shape) > 0


# Primitives without a derivative have no `SAMPLES` entry: their samples here, from the
# same generators.
EXTRA_SAMPLES: dict[str, list[Sample]] = {
    **{name: binary(lambda r, s: _with_ties(r, s), lambda r, s: _with_ties(r, s))
       for name in ["lt", "le", "gt", "ge", "eq", "ne", "np.equal", "np.not_equal", "np.less",
                    "np.less_equal", "np.greater", "np.greater_equal"]},
    **{name: _int_binary() for name in ["bitand", "bitor", "bitxor", "lshift", "rshift"]},
    **{name: binary(gen2=lambda r, s: away(r, s, 0.5, 1.5))
       for name in ["floordiv", "np.floor_divide"]},
    **{name: [S(lambda r, s=s: (_bools(r, s), _bools(r, s)), label=str(s))
              for s in [(3,), (2, 3)]]
       for name in ["np.logical_and", "np.logical_or", "np.logical_xor"]},
    "np.logical_not": [S(lambda r: (_bools(r, (2, 3)),))],
    "invert": _int_unary(),
    **{name: _grid_unary() for name in ["not_", "truth", "np.sign", "np.floor", "np.ceil",
                                        "np.trunc", "np.rint", "np.signbit", "np.round",
                                        "np.zeros_like", "np.ones_like", "np.imag"]},
    "method.round": _grid_unary([(3,), (2, 1, 3)]),
    **{name: _grid_unary([None, None]) for name in ["int", "round", "math.floor",
                                                    "math.ceil", "math.trunc"]},
    "np.int64": _grid_unary([None]),
    **{name: [S(lambda r: (np.array([0.5, np.nan, np.inf, -np.inf, -1.0]) * u(r, None, 1, 2),)),
              S(lambda r: (u(r, None),))]
       for name in ["np.isnan", "np.isinf", "np.isfinite"]},
    **{name: [S(lambda r: (u(r, None),))] for name in ["math.isnan", "math.isinf",
                                                       "math.isfinite"]},
    "np.isclose": [S(lambda r: (_with_ties(r, (2, 3)), _with_ties(r, (2, 3))))],
    **{name: [S(lambda r: (distinct(r, (2, 3)), 1)), S(lambda r: (distinct(r, (4,)), None))]
       for name in ["np.argmax", "np.argmin", "method.argmax", "method.argmin"]},
    **{name: [S(lambda r: (_bools(r, (2, 3)), 1)), S(lambda r: (_bools(r, (4,)), None))]
       for name in ["np.all", "np.any", "method.all", "method.any", "np.count_nonzero"]},
    "np.argsort": [S(lambda r: (distinct(r, (2, 3)), -1))],
    # The optimizer's ReLU derivative and `np.where(c, x, 0.0)` (ties included).
    "max_sens": [S(lambda r: (u(r, (2, 3)), _with_ties(r, (2, 3)), _with_ties(r, (2, 3))))],
    "where_zero": [S(lambda r: (_bools(r, (2, 3)), u(r, (2, 3))))],
    # Whether two trees have one structure (vmap's selects): batching changes leaves only.
    "same_structure": [S(lambda r: ((u(r, (2,)), [u(r, None)]), (u(r, (2,)), [u(r, None)]))),
                       S(lambda r: ((u(r, (2,)), u(r, None)), [u(r, (2,)), u(r, None)]))],
    # (derivative plumbing of a `tl.grad` inside the function mapped)
    "ones_like_output": [S(lambda r: (u(r, None),)), S(lambda r: (u(r, (2, 3)),))],
    "reduced_count": [S(lambda r: (u(r, (2, 3)), 1)), S(lambda r: (u(r, (2, 3, 4)), (0, 2))),
                      S(lambda r: (u(r, (2, 3)), None))],
    "reduced_axes": [S(lambda r: (u(r, (2, 3)), 1)), S(lambda r: (u(r, (2, 3)), None))],
    # (updates in place, of a copy: the loop and the batch update the same arguments)
    "index_update_inplace": [
        S(lambda r: (u(r, (3, 4)), 1, u(r, (4,))), call="P(np.copy(a0), a1, a2)"),
        S(lambda r: (u(r, (3, 4)), (slice(None), 1), u(r, None)),
          call="P(np.copy(a0), a1, a2)", label="broadcast"),
        S(lambda r: (u(r, (4,)), np.array([0, 2, 0]), u(r, (3,))),
          call="P(np.copy(a0), a1, a2)", label="repeated")],
    "index_add_inplace": [
        S(lambda r: (u(r, (4,)), np.array([0, 1, 1, 3]), u(r, (4,))),
          call="P(np.copy(a0), a1, a2)"),
        S(lambda r: (u(r, (3, 2)), (np.array([0, 0]), 1), u(r, None)),
          call="P(np.copy(a0), a1, a2)", label="tuple-index")],
    # Derivative code's plumbing (what `tl.hessian` batches): sensitivities of pieces of
    # an array, gathered into one (in place where the pieces are elements).
    "scatter_sens": [S(lambda r: (u(r, (4, 3)), (1, (slice(0, 2), 2), 3),
                                  (u(r, (3,)), u(r, (2,)), u(r, (3,))))),
                     S(lambda r: (u(r, (5,)), (slice(1, None), slice(None, -1)),
                                  (u(r, (4,)), u(r, (4,)))))],
    "scatter_add": [S(lambda r: (u(r, (4, 3)), u(r, (4, 3)), (slice(0, 2), 3),
                                 (u(r, (2, 3)), u(r, (3,)))))],
    "scatter_onto": [S(lambda r: (u(r, (4, 3)), u(r, (4, 3)), (slice(0, 2), 3),
                                  (u(r, (2, 3)), u(r, (3,))))),
                     S(lambda r: (u(r, (4, 3)), u(r, (4, 3)), ((1, 2), (3, 0), (1, 2)),
                                  (u(r, None), u(r, None), u(r, None))),
                       label="elements")],
    # (its indices ints or tuples of ints, as the optimizer proves before making it)
    "scatter_onto_known": [S(lambda r: (u(r, (4, 3)), u(r, (4, 3)), ((1, 2), (3, 0), (1, 2)),
                                        (u(r, None), u(r, None), u(r, None))),
                             label="elements"),
                           S(lambda r: (u(r, (4, 3)), u(r, (4, 3)), (2, (0, 1)),
                                        (u(r, (3,)), u(r, None))), label="row")],
    **{name: [S(lambda r: (u(r, (2, 3)),))] for name in ["own", "dense_sens"]},
    # (a batched dict's keys are the same for every example)
    "method.keys": [S(lambda r: ({"a": u(r, None), "b": u(r, (2,))},),
                      call="[a0[k] * 2.0 for k in P(a0)]")],
}


# Known failures of `tl.vmap` (outside the rules), as strict xfails: (name, sample) ->
# why.
KNOWN: dict[tuple[str, int], str] = {}


def samples_of(name: str) -> list[Sample]:
    return SAMPLES.get(name) or EXTRA_SAMPLES.get(name) or []


# --- which primitives have a rule of their own ----------------------------------------

def own_rule(name: str) -> bool:
    """A rule of its own: a case of the V transform, or a BATCH rule (its own or, for a
    method, its function's) other than the loop over the batch."""
    prim = PRIMITIVES[name]
    entry = br.BATCH.get(name) or (br.BATCH.get(prim.alias) if prim.alias else None)
    return name in br.IN_TRANSFORM or (entry is not None and entry[0] is not br.per_element)


def test_every_primitive_has_a_batching_rule() -> None:
    neither = sorted(n for n in PRIMITIVES if not own_rule(n) and n not in br.PER_ELEMENT)
    assert not neither, ("primitives with neither a batching rule nor a declaration that "
                         f"they run per element (batch_rules.PER_ELEMENT): {neither}")


def test_per_element_declarations_say_why() -> None:
    for name, reason in br.PER_ELEMENT.items():
        assert name in PRIMITIVES, f"PER_ELEMENT names {name}, which is no primitive"
        assert len(reason) > 10, f"{name}: say why it runs per element"
        entry = br.BATCH.get(name)
        assert entry is not None and entry[0] is br.per_element, \
            f"{name} is declared per element but has another rule"


def test_a_primitive_without_a_rule_is_refused_with_its_name(monkeypatch) -> None:
    # (What the registry test above guards against: the V transform refuses the call.)
    monkeypatch.delitem(br.BATCH, "np.tanh")
    with pytest.raises(VmapError, match="no batching rule for np.tanh"):
        tl.vmap(lambda x: np.tanh(x) * 2.0)(np.ones(3))


# --- generated checks -------------------------------------------------------------------

def _is_data(x: Any) -> bool:
    leaves = tree_leaves(x)
    return bool(leaves) and all(
        (isinstance(v, np.ndarray) and v.dtype.kind in "biufc") or
        isinstance(v, (float, np.floating, np.integer)) for v in leaves)


def _same_layout(xs: list) -> bool:
    first = tree_leaves(xs[0])
    for x in xs[1:]:
        ls = tree_leaves(x)
        if len(ls) != len(first) or any(np.shape(a) != np.shape(b)
                                        for a, b in zip(ls, first, strict=True)):
            return False
        try:
            tree_unflatten(xs[0], ls)
        except (ValueError, TypeError):
            return False
    return True


def _stack(xs: list, last: bool = False) -> Any:
    leaves = [tree_leaves(x) for x in xs]
    out = []
    for j in range(len(leaves[0])):
        if all(ls[j] is ZERO for ls in leaves):  # (a symbolic zero sensitivity stays one)
            out.append(ZERO)
            continue
        col = np.stack([np.asarray(ls[j]) for ls in leaves])
        out.append(np.moveaxis(col, 0, -1) if last else col)
    return tree_unflatten(xs[0], out)


_CALLS: dict[tuple, Any] = {}


def _call_of(name: str, sample: Sample, nargs: int, directory: Path) -> Any:
    key = (name, call_source(sample, nargs), nargs, sample.extra)
    if key not in _CALLS:
        params = ", ".join(f"a{i}" for i in range(nargs))
        call = load_source(header(name, sample) +
                           f"\ndef call({params}):\n    return {key[1]}\n",
                           directory, "batched").call
        # (the loop calls the compiled function: the primitive binds as the IR does)
        _CALLS[key] = (call, tl.jit(call))
    return _CALLS[key]


def _draws(name: str, k: int, sample: Sample) -> list[tuple]:
    seed = (sum(map(ord, name)) * 7919 + k * 101) % (2 ** 32)
    return [sample.make(np.random.default_rng(seed + j)) for j in range(BATCH_SIZE)]


def _data_args(draws: list[tuple]) -> list[int]:
    return [i for i in range(len(draws[0]))
            if all(_is_data(d[i]) for d in draws) and _same_layout([d[i] for d in draws])]


def _assert_matches(got: Any, want: Any, what: str) -> None:
    g, w = tree_leaves(got), tree_leaves(want)
    assert len(g) == len(w), f"{what}: {len(g)} leaves batched, {len(w)} in the loop's"
    for a, b in zip(g, w, strict=True):
        if a is ZERO or b is ZERO:
            assert a is b, f"{what}: {a!r}, the loop's {b!r}"
            continue
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, f"{what}: shape {a.shape}, the loop's {b.shape}"
        if b.dtype.kind in "fc" or a.dtype.kind in "fc":
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True,
                                       err_msg=what)
        else:
            assert a.dtype.kind == b.dtype.kind, \
                f"{what}: dtype {a.dtype}, the loop's {b.dtype}"
            np.testing.assert_array_equal(a, b, err_msg=what)


def _modes(data: list[int]) -> list[str]:
    return ["axis0", "last"] + ([f"only{i}" for i in data] if len(data) > 1 else [])


def batch_params() -> list:
    out = []
    for name in sorted(PRIMITIVES):
        samples = samples_of(name)
        if not samples and own_rule(name) and name not in br.IN_TRANSFORM:
            out.append(pytest.param(name, None, 0, "axis0", id=f"{name}-MISSING"))
        for k, s in enumerate(samples):
            data = _data_args(_draws(name, k, s))
            if not data or name in br.ALWAYS_PER_ELEMENT:
                # (Random draws under vmap draw for each element in turn at each draw
                # site: a loop's numbers where the function draws once, not where it
                # seeds first as these samples do; tests/test_vmap.py checks draws
                # against a loop.)
                continue
            # (Declared per element: the loop itself; once, along axis 0.)
            modes = ["axis0"] if name in br.PER_ELEMENT else \
                ["axis0", "last"] + (["only"] if len(data) > 1 else [])
            known = KNOWN.get((name, k))
            marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
            if k > 0:
                marks.append(pytest.mark.slow)  # (CI: each primitive's first sample)
            for mode in modes:
                out.append(pytest.param(name, s, k, mode, marks=marks,
                                        id=f"{name}-{k}-{mode}" +
                                        (f"-{s.label}" if s.label else "")))
    return out


@pytest.mark.parametrize("name", sorted(n for n in PRIMITIVES
                                        if own_rule(n) and n not in br.IN_TRANSFORM))
def test_samples_hold_data_to_batch(name: str) -> None:
    samples = samples_of(name)
    assert any(_data_args(_draws(name, k, s)) for k, s in enumerate(samples)), \
        f"{name} has a batching rule but no sample with data to batch (floats, arrays)"


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("batch_wrappers")


@pytest.mark.parametrize(("name", "sample", "k", "mode"), batch_params())
def test_batching_rule_against_a_loop(name: str, sample: Sample | None, k: int, mode: str,
                                      batch_dir: Path) -> None:
    if sample is None:
        pytest.fail(f"{name} has a batching rule but no samples: add EXTRA_SAMPLES")
    draws = _draws(name, k, sample)
    data = _data_args(draws)
    fn, compiled = _call_of(name, sample, len(draws[0]), batch_dir)
    batched_sets = [data] if mode in ("axis0", "last") else [[i] for i in data]
    for batched in batched_sets:
        last = mode == "last"
        examples = [tuple(d[i] if i in batched else draws[0][i] for i in range(len(d)))
                    for d in draws]
        try:
            want = _stack([compiled(*e) for e in examples])
        except ValueError as e:  # (the examples' results differ in shape: no batch)
            pytest.skip(f"the examples' results do not stack: {e}")
        args = tuple(_stack([d[i] for d in draws], last) if i in batched else draws[0][i]
                     for i in range(len(draws[0])))
        in_axes = tuple((-1 if last else 0) if i in batched else None
                        for i in range(len(args)))
        got = tl.vmap(fn, in_axes=in_axes)(*args)
        _assert_matches(got, want, f"{name} vmap, in_axes={in_axes}")
