"""`scipy.special` and `scipy.linalg` functions as primitives, registered only where
SciPy is importable (it is an optional dependency: `pip install tapeless[scipy]`). Each
entry names the parameters as SciPy does; the Python backend spells them `_sp.name(...)`
and `_sla.name(...)`, `_sp` and `_sla` being `scipy.special` and `scipy.linalg` in the
generated module's namespace."""

from __future__ import annotations

from typing import Any

from .registry import BY_CALLABLE, Primitive, register

special: Any  # the module scipy.special, or None without SciPy
try:
    import scipy.special as _special

    special = _special
except ImportError:  # pragma: no cover - SciPy is optional
    special = None

linalg: Any  # the module scipy.linalg, or None without SciPy
try:
    import scipy.linalg as _linalg

    linalg = _linalg
except ImportError:  # pragma: no cover - SciPy is optional
    linalg = None

# name: (spec, differentiable), the parameters named as SciPy names them.
SCIPY_SPECIAL: dict[str, tuple[str, bool]] = {
    **{n: ("x", True) for n in "expit logit erf erfc gammaln digamma entr".split()},
    "polygamma": ("n, x", True),  # (differentiable in x only)
    "xlogy": ("x, y", True),
    "xlog1py": ("x, y", True),
    "logsumexp": ("a, axis=None, b=None, keepdims=False, return_sign=False", True),
    "softmax": ("x, axis=None", True),
    "log_softmax": ("x, axis=None", True),
}

# Declared properties (see `tapeless.ir.primitive.Primitive`) beyond what every
# function here has (pure, a number or an array).
PROPERTIES: dict[str, dict[str, Any]] = {
    **{f"scipy.special.{n}": dict(elementwise=True, fresh=True) for n in (
        "expit logit erf erfc gammaln digamma entr polygamma xlogy xlog1py").split()},
    "scipy.special.softmax": dict(fresh=True),
    "scipy.special.log_softmax": dict(fresh=True),
}


# scipy.linalg (rules in rules_scipy.py): name: (spec, differentiable).
SCIPY_LINALG: dict[str, tuple[str, bool]] = {
    "solve_triangular": ("a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False, "
                         "check_finite=True", True),
    "cho_factor": ("a, lower=False, overwrite_a=False, check_finite=True", True),
    "cho_solve": ("c_and_lower, b, overwrite_b=False, check_finite=True", True),
}
# (cho_factor gives a tuple (c, lower).)
NOT_NUMERIC = {"scipy.linalg.cho_factor"}


def _register(prefix: str, module: Any, table: dict[str, tuple[str, bool]]) -> None:
    for name, (spec, diff) in table.items():
        fn = getattr(module, name, None)
        if fn is None or id(fn) in BY_CALLABLE:
            continue
        full = f"{prefix}.{name}"
        register(Primitive(full, fn, spec, differentiable=diff, pure=True, never_zero=True,
                           numeric=full not in NOT_NUMERIC, **PROPERTIES.get(full, {})), fn)


if special is not None:
    _register("scipy.special", special, SCIPY_SPECIAL)
if linalg is not None:
    _register("scipy.linalg", linalg, SCIPY_LINALG)
