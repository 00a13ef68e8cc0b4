"""Functions that belong to a library rather than to the user's program, and the names
errors call them by.

tapeless compiles the user's Python, not the standard library's, NumPy's or SciPy's:
their Python functions are written with constructs outside the supported subset
(`try`, `**kwargs`, in-place updates) and, where they would compile, they would be
differentiated through their implementation details. A call of one is refused at the
user's call site. A function of another installed package is compiled like the user's,
but an error inside it is reported at the user's call site first (`library_error`)."""

from __future__ import annotations

import sys
import sysconfig
import types
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CompileError
from ..ir.nodes import Location

# Libraries whose Python functions tapeless does not compile (besides the standard
# library): only their functions registered as primitives can be called.
REFUSED_PACKAGES = ("numpy", "scipy")
# Standard modules whose Python functions compile as written (`typing.cast(T, x)` is x).
COMPILED_STDLIB = ("typing",)

LIBRARY_HINT = ("tapeless compiles your code, not the library's: write it with the "
                "supported operations (docs/language.md lists the NumPy, SciPy and math "
                "functions it knows), or call it outside the compiled function and pass the "
                "result in")


def _paths(*names: str) -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(str(Path(paths[n]).resolve()) for n in names if n in paths)


_STDLIB = _paths("stdlib", "platstdlib")
_SITE = _paths("purelib", "platlib")


def _under(filename: str, roots: tuple[str, ...]) -> bool:
    try:
        resolved = str(Path(filename).resolve())
    except OSError:
        return False
    return any(resolved.startswith(root.rstrip("/") + "/") for root in roots)


def refused_library(fn: types.FunctionType) -> str | None:
    """The library (`statistics`, `scipy`) whose Python function `fn` is, when tapeless
    refuses to compile it; None for the user's code and other packages."""
    top = (getattr(fn, "__module__", None) or "").split(".")[0]
    if top in REFUSED_PACKAGES:
        return top
    filename = fn.__code__.co_filename
    if top in sys.stdlib_module_names and top not in COMPILED_STDLIB and \
            _under(filename, _STDLIB) and not _under(filename, _SITE):
        return top
    return None


def installed_package(fn: types.FunctionType) -> bool:
    """Whether `fn` is defined in an installed package (site-packages), tapeless's own
    modules excepted."""
    top = (getattr(fn, "__module__", None) or "").split(".")[0]
    return top != "tapeless" and _under(fn.__code__.co_filename, _SITE)


def refusal(fn: types.FunctionType, loc: Location | None) -> CompileError | None:
    """The error for a call of (or a reference to) a library function at `loc`, or None
    when `fn` may be compiled."""
    library = refused_library(fn)
    if library is None:
        return None
    owner = library if library in REFUSED_PACKAGES else "the standard library"
    return CompileError(f"{public_name(fn)} is not supported by tapeless (a Python function "
                        f"of {owner}, which tapeless does not compile)", loc, LIBRARY_HINT)


def library_error(fn: types.FunctionType, error: CompileError,
                  loc: Location | None) -> CompileError:
    """`error`, raised inside the installed package's function `fn`, reported at the
    user's reference to `fn` (`loc`) first."""
    inner = f" (at {error.loc})" if error.loc is not None else ""
    return CompileError(f"{public_name(fn)} cannot be compiled: {error.message}{inner}",
                        loc, error.hint or LIBRARY_HINT)


def public_name(value: Any) -> str:
    """The dotted name users call `value` by: private submodules left out
    (`scipy.special.comb`, not `scipy.special._basic.comb`), SciPy's ufuncs under
    `scipy.special`."""
    name: str | None = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    if not isinstance(name, str):  # (an object: named by its class)
        return f"an object of class {public_name(type(value))}"
    if isinstance(value, np.ufunc):
        short: str = getattr(value, "__name__", "")
        if getattr(sys.modules.get("scipy.special"), short, None) is value:
            return f"scipy.special.{short}"
        return f"numpy.{short}"
    module: str = getattr(value, "__module__", None) or ""
    if module in ("builtins", ""):
        return name
    parts = module.split(".")
    for n in range(1, len(parts)):  # the shortest public module that exports it
        if getattr(sys.modules.get(".".join(parts[:n])), name, None) is value:
            return ".".join(parts[:n] + [name])
    first = parts[0] if parts[0].endswith("__") else parts[0].lstrip("_")  # (`__main__`)
    return ".".join([first] + [p for p in parts[1:] if not p.startswith("_")] + [name])
