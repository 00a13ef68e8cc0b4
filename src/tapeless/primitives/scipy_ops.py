"""`scipy.special` functions as primitives, registered only where SciPy is importable
(it is an optional dependency: `pip install tapeless[scipy]`). Each entry names the
parameters as SciPy does; the Python backend spells them `_sp.name(...)`, `_sp` being
`scipy.special` in the generated module's namespace."""

from __future__ import annotations

from typing import Any

from .registry import BY_CALLABLE, Primitive, register

special: Any  # the module scipy.special, or None without SciPy
try:
    import scipy.special as _special

    special = _special
except ImportError:  # pragma: no cover - SciPy is optional
    special = None

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


def _register() -> None:
    for name, (spec, diff) in SCIPY_SPECIAL.items():
        fn = getattr(special, name, None)
        if fn is None or id(fn) in BY_CALLABLE:
            continue
        full = f"scipy.special.{name}"
        register(Primitive(full, fn, spec, differentiable=diff, pure=True, never_zero=True,
                           numeric=True, **PROPERTIES.get(full, {})), fn)


if special is not None:
    _register()
