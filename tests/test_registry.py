"""The primitive registry is the one place that says what the compiler knows about an
operation: AD, kind inference and the optimizer read a primitive's declared properties,
never lists of names, so a primitive added as one table row and one rule gets the same
treatment as the ones before it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np

import tapeless as tl
from tapeless.ir.primitive import Primitive
from tapeless.primitives import PRIMITIVES

SRC = Path(tl.__file__).parent


def _shape(source: str) -> str:
    """The generated code with names, numbers and the elementwise call itself abstracted
    away: what is left is its structure and the helpers it calls."""
    return re.sub(r"\b\d+(\.\d+)?(e-?\d+)?\b", "N", source)


def test_a_primitive_added_as_one_row_and_one_rule_is_optimized_like_tanh() -> None:
    # np.sinc is one row of the NumPy table (elementwise) and one reverse rule: its
    # gradient has no run-time helper left (no check_scalar_output, ones_like_output,
    # expand_reduced, unbroadcast or to_structure), exactly as np.tanh's.
    w = np.array([0.3, -1.2, 0.7])
    x = np.array([0.0, 0.4, -2.3])

    def with_sinc(x):
        return np.sum(np.sinc(x) * w)

    def with_tanh(x):
        return np.sum(np.tanh(x) * w)

    for fn in (with_sinc, with_tanh):
        source = tl.grad(fn).source_for(x)
        assert "_rt." not in source, source
        body = [line for line in source.splitlines()[1:] if line.strip()]
        assert body[-1].strip().startswith("return w * "), source
    fd = [(with_sinc(x + 1e-6 * e) - with_sinc(x - 1e-6 * e)) / 2e-6 for e in np.eye(3)]
    np.testing.assert_allclose(tl.grad(with_sinc)(x), fd, rtol=1e-7, atol=1e-9)


def test_every_primitive_is_a_primitive_record_with_declared_properties() -> None:
    flags = ("elementwise", "comparison", "number_op", "numeric", "never_zero", "fresh",
             "pure", "foldable", "zero_preserving", "accepts_zero", "passes_on", "cheap",
             "loop", "selects", "equality", "reshapes", "ignores_values", "effect",
             "statement", "differentiable", "variadic")
    for name, prim in PRIMITIVES.items():
        assert isinstance(prim, Primitive), name
        for flag in flags:
            assert type(getattr(prim, flag)) is bool, (name, flag)
        assert isinstance(prim.blocks, tuple)
        assert prim.reduction in (None, "sum", "mean", "max", "min", "prod"), name
        assert prim.shaped_like is None or prim.shaped_like < len(prim.signature.parameters)
        assert prim.jvp_rule is None or callable(prim.jvp_rule)
        # A property that implies another: a comparison is elementwise; a numeric result
        # is never the symbolic zero; an effect is never shared.
        assert not prim.comparison or prim.elementwise, name
        assert not prim.numeric or prim.never_zero, name
        assert not (prim.effect and prim.pure), name
        if prim.loop:
            assert prim.blocks, name
        if prim.alias is not None:
            assert prim.alias in PRIMITIVES, name


def test_optimizer_ad_and_backend_keep_no_sets_of_primitive_names() -> None:
    # A set, tuple or list of three or more primitive names in the stages that read the
    # registry would be a second, hand-kept list of a property. (Tables of rules keyed by
    # primitive, dicts, are how per-primitive rules are registered.)
    names = set(PRIMITIVES)
    offenders = []
    for folder in ("ad", "opt", "backend", "ir"):
        for path in (SRC / folder).glob("*.py"):
            if path.name == "spelling.py":
                continue  # (the Python backend's table of spellings, by name: its own)
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if not isinstance(node, (ast.Set, ast.Tuple, ast.List)):
                    continue
                elts = node.elts
                strings = [e.value for e in elts if isinstance(e, ast.Constant)
                           and isinstance(e.value, str)]
                if len([s for s in strings if s in names]) >= 3:
                    offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, f"name sets of primitives outside the registry: {offenders}"


def test_the_python_backend_spells_every_primitive() -> None:
    from tapeless.backend.spelling import check_table

    assert check_table() == []
