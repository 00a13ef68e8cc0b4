"""Every differentiable primitive's forward rule, checked against finite differences.

Generated from the registry, on the samples of `test_primitive_rules.py` (each
primitive's argument generators, several shapes and domains):

- first order: `tl.jvp` of `<ct, prim(args)>` along a random tangent of the
  differentiated arguments (zero tangents for the others) against the 4-point central
  difference of the compiled forward;
- second order, forward over reverse (what `tl.hessian` runs): `tl.jvp` of the compiled
  gradient of `<ct, prim(args)>` along a random tangent, contracted with a random `w`,
  against finite differences of the gradient. This differentiates, in forward mode,
  every primitive the reverse rules use.

A differentiable primitive without a forward rule is a failing test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gradcheck import abs_dot, directional_fd, is_float_leaf, random_like, vdot
from test_primitive_rules import (
    DIFFERENTIABLE,
    Sample,
    _setup,
    sample_params,
    value_and_grad_of,
)

import tapeless as tl
from tapeless.primitives import PRIMITIVES


def _zero_tangent(x: Any) -> Any:
    """A tangent of `x`'s structure that is zero (0.0 for leaves that are not floats)."""
    return tl.tree_map(lambda v: np.zeros(np.shape(v)) if isinstance(v, np.ndarray)
                       else 0.0, x)


def has_forward_rule(name: str) -> bool:
    prim = PRIMITIVES[name]
    if prim.alias and prim.jvp_rule is None and not prim.linear and \
            not prim.jvp_from_reverse and not prim.jvp_by_transposition:
        prim = PRIMITIVES[prim.alias]
    return prim.jvp_rule is not None or bool(prim.linear) or prim.jvp_from_reverse or \
        prim.jvp_by_transposition


def test_every_differentiable_primitive_has_a_forward_rule() -> None:
    missing = [n for n in DIFFERENTIABLE if not has_forward_rule(n)]
    assert not missing, f"differentiable primitives without a forward rule: {missing}"


def _random_tangent(rng: np.random.Generator, x: Any) -> Any:
    """A random tangent of `x`'s structure (0.0 for leaves that are not floats: a
    string's or an integer's tangent is zero)."""
    return tl.tree_map(lambda v: random_like(rng, v) if is_float_leaf(v) else
                       (np.zeros(np.shape(v)) if isinstance(v, np.ndarray) else 0.0), x)


def _tangents(rng: np.random.Generator, args: tuple, diff: tuple[int, ...]) -> tuple:
    return tuple(_random_tangent(rng, a) if i in diff else _zero_tangent(a)
                 for i, a in enumerate(args))


def _check(analytic: float, numeric: float, scale: float, rtol: float, what: str) -> None:
    assert np.isfinite(analytic), f"{what}: not finite: {analytic!r}"
    assert abs(analytic - numeric) <= 1e-8 + rtol * (scale + abs(numeric)), \
        f"{what}: forward mode gives {analytic!r}, finite differences {numeric!r}"


_JVPS: dict[int, Any] = {}


@pytest.mark.parametrize(("name", "sample", "k"), sample_params(1, forward=True))
def test_forward_first_derivative(name: str, sample: Sample | None, k: int,
                                  wrapper_dir: Path) -> None:
    rng, args, module, ct = _setup(name, sample, k, 1, wrapper_dir)
    assert sample is not None
    full = (*args, ct)
    diff = tuple(sample.diff)
    tangents = _tangents(rng, full, diff)
    value, tangent = tl.jvp(module.scalar, full, tangents)
    assert np.isfinite(value)
    if id(module.scalar) not in _JVPS:
        _JVPS[id(module.scalar)] = tl.jit(module.scalar)  # (the primitive binds as the IR does)
    numeric = directional_fd(_JVPS[id(module.scalar)], full, diff,
                             tuple(tangents[i] for i in diff))
    _check(float(tangent), numeric, abs(float(tangent)), sample.rtol,
           f"{name} forward first derivative")


@pytest.mark.parametrize(("name", "sample", "k"), sample_params(2, forward=True))
def test_forward_over_reverse(name: str, sample: Sample | None, k: int,
                              wrapper_dir: Path) -> None:
    rng, args, module, ct = _setup(name, sample, k, 2, wrapper_dir)
    assert sample is not None
    argnums = tuple(sample.diff) + (len(args),)
    value_and_grad = value_and_grad_of(module, argnums)
    full = (*args, ct)
    _, grads = value_and_grad(*full)
    w = random_like(rng, grads)
    tangents = _tangents(rng, full, argnums)
    _, (_, t_grads) = tl.jvp(value_and_grad, full, tangents)
    analytic = vdot(w, t_grads)
    numeric = directional_fd(lambda *a: vdot(w, value_and_grad(*a)[1]), full, argnums,
                             tuple(tangents[i] for i in argnums))
    _check(analytic, numeric, abs_dot(w, t_grads), sample.rtol,
           f"{name} forward-over-reverse second derivative")


@pytest.fixture(scope="module")
def wrapper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("forward_wrappers")

