"""Every differentiable primitive's first derivative at special points, generated from
the registry (the SAMPLES of tests/test_primitive_rules.py give each call's form and
which arguments are differentiated).

At each point the differentiated float arguments are set, element by element, to 0,
±1 or ±0.5: all of them to the same value (so ties of max/min/maximum/abs-style
functions and equal arguments are covered), one of them with the others as sampled, or
one element of one array.
For each coordinate the left and right one-sided differences of the compiled forward
decide whether the function is smooth there (they agree and are finite); where it is,
the gradient must not be nan or inf, and must match the central difference (a rule
giving 0 where the derivative is finite and nonzero fails here). The second derivatives
of the rules the second-order rule test checks are checked the same way. Points outside a
function's domain (the forward raises or is not finite) and kinks are skipped: what a
rule gives at a kink is a convention (listed below)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gradcheck import is_float_leaf, random_cotangent, random_like, vdot
from test_primitive_rules import (
    DIFFERENTIABLE,
    SAMPLES,
    Sample,
    module_for,
    value_and_grad_of,
)

import tapeless as tl

VALUES = (0.0, 1.0, -1.0, 0.5, -0.5)
H = 1e-6

# Conventions at points where the derivative does not exist (not checked; listed here so
# that they are deliberate): abs, np.abs and math.fabs give 0 at 0; np.maximum,
# np.minimum, np.fmax and np.fmin share a tie equally (1/2 each); np.max and np.min
# reductions share among ties equally; np.clip gives 0 to all three at a bound; np.std
# gives 0 where it is 0 (JAX: nan); np.linalg.norm at 0 gives nan (as JAX); the
# derivative of x ** y in x is 0 where y == 0 and x == 0, and in y 0 where x <= 0;
# np.fabs gives 0 at 0; np.nanmax and np.nanmin share among ties as np.max does; np.sort
# and np.partition send each sorted element's sensitivity to one of equal elements (in
# np.argsort's order); np.median, np.quantile and np.percentile share an order
# statistic's sensitivity among equal elements where its rank is the first or last of
# theirs (inside, each partial derivative is 0 and so is theirs); np.unique shares a
# value's among the elements equal to it, np.histogram the range's among the smallest
# (largest) elements; np.interp at a knot takes the slope of the segment to its right.
# np.linalg.qr has no derivative where its argument (or the leading square block of a wide
# one) is rank-deficient, as at the all-equal matrices: the factors are not unique there,
# and finite differences see only the one LAPACK picks (which depends on the LAPACK).


def _qr_undefined(name: str, sample: Sample, point: tuple) -> bool:
    if name != "np.linalg.qr":
        return False
    for i in sample.diff:
        a = np.asarray(point[i], dtype=float)
        k = min(a.shape[-2:])
        block = a[..., :, :k] if a.shape[-1] > a.shape[-2] else a
        if np.any(np.linalg.matrix_rank(block) < k):
            return True
    return False


def _float_args(sample: Sample, args: tuple) -> bool:
    return all(is_float_leaf(args[i]) for i in sample.diff)


def _with(value: Any, v: float) -> Any:
    return float(v) if isinstance(value, float) else np.full(np.shape(value), v)


def points(sample: Sample, args: tuple) -> list[tuple[str, tuple]]:
    out = []
    for v in VALUES:
        new = list(args)
        for i in sample.diff:
            new[i] = _with(args[i], v)
        out.append((f"all={v}", tuple(new)))
        if len(sample.diff) > 1:
            for i in sample.diff:
                one = list(args)
                one[i] = _with(args[i], v)
                out.append((f"a{i}={v}", tuple(one)))
        for i in sample.diff:  # one element of an array (a single zero of a product)
            if np.size(args[i]) > 1:
                one = list(args)
                one[i] = np.array(args[i], dtype=float)
                one[i].flat[0] = v
                out.append((f"a{i}.flat[0]={v}", tuple(one)))
    return out


def params() -> list:
    out = []
    for name in DIFFERENTIABLE:
        for k, s in enumerate(SAMPLES.get(name, [])):
            # (A sample whose reverse derivative is a known refusal fails here too; it
            # may also pass, where no special point applies.)
            marks = [pytest.mark.xfail(strict=False, reason=s.xfail)] if s.xfail else []
            out.append(pytest.param(name, s, k, marks=marks,
                                    id=f"{name}-{k}" + (f"-{s.label}" if s.label else "")))
    return out


@pytest.fixture(scope="module")
def special_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("special_points")


def _value(f: Any, args: tuple) -> float | None:
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            raw = f(*args)
            if np.iscomplexobj(raw):
                return None  # (a negative base to a fractional power in Python)
            v = float(raw)
    except (ValueError, ZeroDivisionError, OverflowError, np.linalg.LinAlgError):
        return None
    return v if np.isfinite(v) else None


def _shift(args: tuple, i: int, index: tuple, h: float) -> tuple:
    new = list(args)
    if isinstance(args[i], float):
        new[i] = args[i] + h
    else:
        a = np.array(args[i], dtype=float)
        a[index] += h
        new[i] = a
    return tuple(new)


def defects(name: str, sample: Sample, k: int, directory: Path) -> list[str]:
    rng = np.random.default_rng(sum(map(ord, name)) * 7 + k)
    args = sample.make(rng)
    if not _float_args(sample, args) or sample.rtol > 1e-6:
        return []  # (structures are not special points; float32 is too coarse)
    module, y = module_for(name, sample, args, directory)
    ct = random_cotangent(rng, y)
    argnums = tuple(sample.diff)
    vg = value_and_grad_of(module, argnums + (len(args),))

    def f(*a: Any) -> Any:
        return vg(*a)[0]

    found = []
    for label, point in points(sample, args):
        if _qr_undefined(name, sample, point):
            continue
        full = (*point, ct)
        f0 = _value(f, full)
        if f0 is None:
            continue
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                grads = vg(*full)[1]
        except Exception as e:  # noqa: BLE001
            found.append(f"{label}: the gradient raises {type(e).__name__}: {e}")
            continue
        for i, g in zip(argnums, grads, strict=False):
            g = np.asarray(g, dtype=float)
            for index in np.ndindex(np.shape(point[i])):
                up = _value(f, _shift(full, i, index, H))
                down = _value(f, _shift(full, i, index, -H))
                up2 = _value(f, _shift(full, i, index, 2 * H))
                down2 = _value(f, _shift(full, i, index, -2 * H))
                if up is None or down is None or up2 is None or down2 is None:
                    continue
                right, left = (up - f0) / H, (f0 - down) / H
                central = (up - down) / (2 * H)
                wide = (up2 - down2) / (4 * H)
                scale = 1.0 + abs(central)
                if abs(right - left) > 1e-4 * scale or abs(wide - central) > 1e-4 * scale:
                    # a kink, a jump or an infinite slope (the difference quotients
                    # depend on the step): not differentiable, a convention applies
                    continue
                got = float(g[index])
                if not np.isfinite(got) or abs(got - central) > 1e-4 * scale:
                    found.append(f"{label}: d/d a{i}{list(index)} = {got!r}, finite "
                                 f"differences give {central!r}")
    return found


@pytest.mark.parametrize(("name", "sample", "k"), params())
def test_first_derivative_at_special_points(name: str, sample: Sample, k: int,
                                            special_dir: Path) -> None:
    found = defects(name, sample, k, special_dir)
    assert not found, f"{name}:\n" + "\n".join(found[:10])


# --- second order -------------------------------------------------------------------------------


def second_params() -> list:
    """The samples the second-order rule test checks (one rule each)."""
    from test_primitive_rules import PARAMS2

    return [p for p in PARAMS2 if p.values[1] is not None]


def second_defects(name: str, sample: Sample, k: int, directory: Path) -> list[str]:
    """<w, gradient> differentiated again (the rule's backpropagator differentiated), at
    the special points, against central differences of <w, gradient>."""
    rng = np.random.default_rng(sum(map(ord, name)) * 11 + k)
    args = sample.make(rng)
    if not _float_args(sample, args) or sample.rtol > 1e-6:
        return []
    module, y = module_for(name, sample, args, directory)
    ct = random_cotangent(rng, y)
    argnums = tuple(sample.diff)
    vg = value_and_grad_of(module, argnums + (len(args),))
    w = random_like(rng, vg(*args, ct)[1])
    second = tl.grad(module.second, argnums)

    def f(*a: Any) -> Any:
        return vdot(w, vg(*a)[1])

    found = []
    for label, point in points(sample, args):
        if _qr_undefined(name, sample, point):
            continue
        full = (*point, ct)
        f0 = _value(f, full)
        if f0 is None or _value(lambda *a: vg(*a)[0], full) is None:
            continue
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                grads = second(*full, w)
        except Exception as e:  # noqa: BLE001
            found.append(f"{label}: the second derivative raises {type(e).__name__}: {e}")
            continue
        for i, g in zip(argnums, grads, strict=False):
            g = np.asarray(g, dtype=float)
            for index in np.ndindex(np.shape(point[i])):
                vals = [_value(f, _shift(full, i, index, s * H)) for s in (1, -1, 2, -2)]
                if any(v is None for v in vals):
                    continue
                up, down, up2, down2 = vals  # type: ignore[misc]
                right, left = (up - f0) / H, (f0 - down) / H
                central = (up - down) / (2 * H)
                wide = (up2 - down2) / (4 * H)
                scale = 1.0 + abs(central)
                if abs(right - left) > 1e-3 * scale or abs(wide - central) > 1e-3 * scale:
                    continue
                got = float(g[index])
                if not np.isfinite(got) or abs(got - central) > 1e-3 * scale:
                    found.append(f"{label}: d/d a{i}{list(index)} = {got!r}, finite "
                                 f"differences give {central!r}")
    return found


@pytest.mark.parametrize(("name", "sample", "k"), second_params())
def test_second_derivative_at_special_points(name: str, sample: Sample, k: int,
                                             special_dir: Path) -> None:
    found = second_defects(name, sample, k, special_dir)
    assert not found, f"{name}:\n" + "\n".join(found[:10])
