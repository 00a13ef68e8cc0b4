"""NumPy and `math` functions, and array methods, as primitives. Each entry names the
parameters as NumPy does, so keyword calls bind the same way as in NumPy."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .registry import BY_CALLABLE, METHODS, Primitive, register

# name: (spec, differentiable), the parameters named as NumPy names them.
NUMPY_FUNCTIONS: dict[str, tuple[str, bool]] = {
    # elementwise, one argument
    **{n: ("x", True) for n in (
        "exp log log1p expm1 sqrt sin cos tan tanh sinh cosh arcsin arccos arctan arcsinh "
        "arccosh arctanh abs square negative positive reciprocal exp2 log2 log10 "
        "cbrt deg2rad rad2deg sinc").split()},
    **{n: ("x", False) for n in (
        "sign floor ceil trunc rint isnan isinf isfinite logical_not signbit").split()},
    # elementwise, two arguments
    **{n: ("x1, x2", True) for n in (
        "add subtract multiply divide power maximum minimum fmax fmin arctan2 "
        "logaddexp hypot mod fmod").split()},
    **{n: ("x1, x2", False) for n in (
        "floor_divide equal not_equal less less_equal greater greater_equal "
        "logical_and logical_or logical_xor").split()},
    "where": ("condition, x, y", True),
    "clip": ("a, a_min, a_max", True),
    "round": ("a, decimals=0", False),
    # linear algebra
    "dot": ("a, b", True),
    "matmul": ("x1, x2", True),
    "outer": ("a, b", True),
    "inner": ("a, b", True),
    "einsum": ("subscripts, *operands", True),
    "tensordot": ("a, b, axes=2", True),
    "trace": ("a, offset=0, axis1=0, axis2=1", True),
    "diag": ("v, k=0", True),
    "tril": ("m, k=0", True),
    "triu": ("m, k=0", True),
    # reductions
    "sum": ("a, axis=None, dtype=None, keepdims=False", True),
    "mean": ("a, axis=None, dtype=None, keepdims=False", True),
    "prod": ("a, axis=None, dtype=None, keepdims=False", True),
    "max": ("a, axis=None, keepdims=False", True),
    "min": ("a, axis=None, keepdims=False", True),
    "amax": ("a, axis=None, keepdims=False", True),
    "amin": ("a, axis=None, keepdims=False", True),
    "var": ("a, axis=None, dtype=None, ddof=0, keepdims=False", True),
    "std": ("a, axis=None, dtype=None, ddof=0, keepdims=False", True),
    "argmax": ("a, axis=None", False),
    "argmin": ("a, axis=None", False),
    "cumsum": ("a, axis=None", True),
    "all": ("a, axis=None, keepdims=False", False),
    "any": ("a, axis=None, keepdims=False", False),
    "count_nonzero": ("a, axis=None", False),
    "argsort": ("a, axis=-1", False),
    # shapes
    "reshape": ("a, shape", True),
    "transpose": ("a, axes=None", True),
    "swapaxes": ("a, axis1, axis2", True),
    "moveaxis": ("a, source, destination", True),
    "expand_dims": ("a, axis", True),
    "squeeze": ("a, axis=None", True),
    "broadcast_to": ("array, shape", True),
    "concatenate": ("arrays, axis=0", True),
    "stack": ("arrays, axis=0", True),
    "hstack": ("tup", True),
    "vstack": ("tup", True),
    "split": ("ary, indices_or_sections, axis=0", True),
    "ravel": ("a", True),
    "flip": ("m, axis=None", True),
    "take": ("a, indices, axis=None", True),
    "atleast_1d": ("a", True),
    "atleast_2d": ("a", True),
    "shape": ("a", False),
    "ndim": ("a", False),
    "size": ("a", False),
    # constructors
    "zeros": ("shape, dtype=float", False),
    "ones": ("shape, dtype=float", False),
    "empty": ("shape, dtype=float", False),
    "zeros_like": ("a, dtype=None", False),
    "ones_like": ("a, dtype=None", False),
    "full": ("shape, fill_value, dtype=None", True),
    "full_like": ("a, fill_value, dtype=None", True),
    "eye": ("N, M=None, k=0, dtype=float", False),
    "identity": ("n, dtype=None", False),
    "arange": ("*args, dtype=None", True),
    "linspace": ("start, stop, num=50, endpoint=True", True),
    "array": ("object, dtype=None", True),
    "asarray": ("a, dtype=None", True),
    "copy": ("a", True),
    "float64": ("x=0", True),
    "float32": ("x=0", True),
    "int64": ("x=0", False),
    "isclose": ("a, b, rtol=1e-05, atol=1e-08", False),
    "allclose": ("a, b, rtol=1e-05, atol=1e-08", False),
    "array_equal": ("a1, a2", False),
    # elementwise (more)
    **{n: ("x", True) for n in "fabs degrees radians conjugate".split()},
    "logaddexp2": ("x1, x2", True),
    "nan_to_num": ("x, copy=True, nan=0.0, posinf=None, neginf=None", True),
    "real": ("val", True),
    "imag": ("val", False),
    # shapes and rearrangements (more)
    "repeat": ("a, repeats, axis=None", True),
    "roll": ("a, shift, axis=None", True),
    "tile": ("A, reps", True),
    "flipud": ("m", True),
    "fliplr": ("m", True),
    "rot90": ("m, k=1, axes=(0, 1)", True),
    "rollaxis": ("a, axis, start=0", True),
    "atleast_3d": ("a", True),
    "column_stack": ("tup", True),
    "append": ("arr, values, axis=None", True),
    "array_split": ("ary, indices_or_sections, axis=0", True),
    "hsplit": ("ary, indices_or_sections", True),
    "vsplit": ("ary, indices_or_sections", True),
    "dsplit": ("ary, indices_or_sections", True),
    "take_along_axis": ("arr, indices, axis=-1", True),
    "pad": ("array, pad_width, mode='constant', constant_values=0", True),
    "meshgrid": ("*xi, copy=True, sparse=False, indexing='xy'", True),
    "select": ("condlist, choicelist, default=0", True),
    # differences, products, sorting, statistics (more)
    "diff": ("a, n=1, axis=-1, prepend=None, append=None", True),
    "cumprod": ("a, axis=None, dtype=None", True),
    "gradient": ("f, *varargs, axis=None, edge_order=1", True),
    "kron": ("a, b", True),
    "cross": ("a, b, axisa=-1, axisb=-1, axisc=-1, axis=None", True),
    "sort": ("a, axis=-1, kind=None, order=None", True),
    "partition": ("a, kth, axis=-1, kind='introselect', order=None", True),
    "nansum": ("a, axis=None, dtype=None, keepdims=False", True),
    "nanmean": ("a, axis=None, dtype=None, keepdims=False", True),
    "nanmax": ("a, axis=None, keepdims=False", True),
    "nanmin": ("a, axis=None, keepdims=False", True),
    "average": ("a, axis=None, weights=None, returned=False, keepdims=False", True),
    "median": ("a, axis=None, out=None, overwrite_input=False, keepdims=False", True),
    "percentile": ("a, q, axis=None, out=None, overwrite_input=False, method='linear', "
                   "keepdims=False", True),
    "quantile": ("a, q, axis=None, out=None, overwrite_input=False, method='linear', "
                 "keepdims=False", True),
    "cov": ("m, y=None, rowvar=True, bias=False, ddof=None", True),
    "corrcoef": ("x, y=None, rowvar=True", True),
    "convolve": ("a, v, mode='full'", True),
    "correlate": ("a, v, mode='valid'", True),
    "interp": ("x, xp, fp, left=None, right=None, period=None", True),
    "bincount": ("x, weights=None, minlength=0", True),
    # non-differentiable: indices, searches
    "triu_indices": ("n, k=0, m=None", False),
    "tril_indices": ("n, k=0, m=None", False),
    "searchsorted": ("a, v, side='left', sorter=None", False),
    "unique": ("ar, return_index=False, return_inverse=False, return_counts=False, axis=None",
               True),
    "histogram": ("a, bins=10, range=None, density=None, weights=None", True),
    # (rules in rules_linalg.py)
    "diagonal": ("a, offset=0, axis1=0, axis2=1", True),
}

NUMPY_LINALG: dict[str, tuple[str, bool]] = {
    "norm": ("x, ord=None, axis=None, keepdims=False", True),
    "inv": ("a", True),
    "solve": ("a, b", True),
    "det": ("a", True),
    "slogdet": ("a", True),
    # (rules in rules_linalg.py)
    "svd": ("a, full_matrices=True, compute_uv=True, hermitian=False", True),
    "eigh": ("a, UPLO='L'", True),
    "eigvalsh": ("a, UPLO='L'", True),
    "cholesky": ("a, /, *, upper=False", True),
    "qr": ("a, mode='reduced'", True),
    "pinv": ("a, rcond=None, hermitian=False, *, rtol=None", True),
    "matrix_power": ("a, n", True),
    "lstsq": ("a, b, rcond=None", True),
}

# `math` functions take positional arguments only.
MATH_FUNCTIONS: dict[str, tuple[str, bool]] = {
    **{n: ("x", True) for n in (
        "sin cos tan asin acos atan sinh cosh tanh asinh acosh atanh exp expm1 log1p log2 "
        "log10 sqrt fabs erf erfc gamma lgamma degrees radians").split()},
    **{n: ("x", False) for n in "floor ceil trunc isnan isinf isfinite factorial".split()},
    "log": ("x, *base", True),
    "pow": ("x, y", True),
    "atan2": ("y, x", True),
    "hypot": ("*coordinates", True),
    "copysign": ("x, y", True),
    "fmod": ("x, y", True),
    "isclose": ("a, b", False),
}


# Declared properties (see `tapeless.ir.primitive.Primitive`) beyond what every NumPy
# and math function has (pure, never the symbolic zero, a number or an array unless
# NOT_NUMERIC says otherwise; ufuncs return new arrays).
PROPERTIES: dict[str, dict[str, Any]] = {
    **{f"np.{n}": dict(elementwise=True) for n in (
        "exp log log1p expm1 sqrt sin cos tan tanh sinh cosh arcsin arccos arctan arcsinh "
        "arccosh arctanh abs square negative positive reciprocal exp2 log2 log10 cbrt "
        "deg2rad rad2deg sinc sign add subtract multiply divide power maximum minimum logaddexp "
        "arctan2 hypot fmax fmin").split()},
    # (comparisons and logical operations: elementwise, a boolean result)
    **{f"np.{n}": dict(comparison=True) for n in (
        "equal not_equal less less_equal greater greater_equal logical_and logical_or "
        "logical_xor logical_not").split()},
    **{f"np.{n}": dict(reduction=n, fresh=True) for n in "sum mean max min prod".split()},
    "np.amax": dict(reduction="max"), "np.amin": dict(reduction="min"),
    "np.reshape": dict(reshapes=True), "np.expand_dims": dict(reshapes=True),
    # (np.ndim of a constant depends on its shape only.)
    "np.ndim": dict(foldable=True, ignores_values=True),
    **{f"np.{n}": dict(fresh=True) for n in (
        "dot einsum tensordot outer concatenate stack zeros ones full copy where "
        "cumsum").split()},
    **{f"np.{n}": dict(elementwise=True) for n in (
        "fabs degrees radians conjugate logaddexp2").split()},
    # (np.diff is not fresh: with n=0 it returns its argument.)
    **{f"np.{n}": dict(fresh=True) for n in (
        "repeat roll tile column_stack append pad select cumprod kron cross sort partition "
        "convolve correlate cov corrcoef interp bincount").split()},
    **{f"np.linalg.{n}": dict(fresh=True) for n in "eigvalsh cholesky pinv".split()},
    # Constructors: a new array each call (what an in-place update may own).
    **{f"np.{n}": dict(fresh=True) for n in (
        "array empty zeros_like ones_like empty_like full_like eye identity arange "
        "linspace").split()},
    **{f"math.{n}": dict(result_kind="int") for n in ("floor", "ceil", "trunc", "factorial")},
    # (isnan, isinf, isfinite and isclose give bools: no fixed number kind.)
    **{f"math.{n}": dict(result_kind="float") for n in (
        "sin cos tan asin acos atan sinh cosh tanh asinh acosh atanh exp expm1 log1p log2 "
        "log10 sqrt fabs erf erfc gamma lgamma degrees radians log pow atan2 hypot copysign "
        "fmod").split()},
}
# NumPy functions whose result is a tuple or a list, not a number or an array.
NOT_NUMERIC = {"np.split", "np.shape", "np.linalg.slogdet", "np.array_split", "np.hsplit",
               "np.vsplit", "np.dsplit", "np.meshgrid", "np.gradient", "np.triu_indices",
               "np.tril_indices", "np.unique", "np.histogram",
               "np.linalg.svd", "np.linalg.eigh", "np.linalg.qr", "np.linalg.lstsq"}


def _register_table(prefix: str, module: object, table: dict[str, tuple[str, bool]]) -> None:
    for name, (spec, diff) in table.items():
        fn = getattr(module, name, None)
        if fn is None or id(fn) in BY_CALLABLE:
            continue
        full = f"{prefix}.{name}"
        props = dict(PROPERTIES.get(full, {}))
        props.setdefault("fresh", isinstance(fn, np.ufunc))
        register(Primitive(full, fn, spec,
                           differentiable=diff, pure=True, never_zero=True,
                           numeric=prefix != "math" and full not in NOT_NUMERIC, **props), fn)


_register_table("np", np, NUMPY_FUNCTIONS)
_register_table("np.linalg", np.linalg, NUMPY_LINALG)
_register_table("math", math, MATH_FUNCTIONS)


# Array (and list/dict) methods: `x.name(...)` compiles to a primitive whose first
# parameter is the receiver; its derivative is that of the function named in `alias`.
def _method(name: str, spec: str, alias: str | None, differentiable: bool = True,
            **properties: Any) -> None:
    prim = Primitive(f"method.{name}", lambda x, *a, _n=name: getattr(x, _n)(*a), spec,
                     differentiable=differentiable, never_zero=True, alias=alias,
                     **properties)
    register(prim)
    METHODS[name] = prim


# (Fresh as their functions are: `np.sum(x)` calls `x.sum()` where x is no array.)
for _n in ("sum", "mean", "prod"):
    _method(_n, "self, axis=None, dtype=None, keepdims=False", f"np.{_n}", reduction=_n,
            fresh=True)
for _n in ("max", "min"):
    _method(_n, "self, axis=None, keepdims=False", f"np.{_n}", reduction=_n, fresh=True)
for _n in ("var", "std"):
    _method(_n, "self, axis=None, dtype=None, ddof=0, keepdims=False", f"np.{_n}")
for _n in ("argmax", "argmin"):
    _method(_n, "self, axis=None", f"np.{_n}", differentiable=False)
for _n in ("any", "all"):
    _method(_n, "self, axis=None, keepdims=False", f"np.{_n}", differentiable=False)
_method("cumsum", "self, axis=None", "np.cumsum")
_method("reshape", "self, *shape", "method.reshape")
_method("transpose", "self, *axes", "method.transpose")
_method("swapaxes", "self, axis1, axis2", "np.swapaxes")
_method("squeeze", "self, axis=None", "np.squeeze")
_method("clip", "self, min=None, max=None", "np.clip")
_method("dot", "self, b", "np.dot")
_method("ravel", "self", "np.ravel")
_method("flatten", "self", "np.ravel", fresh=True)
_method("copy", "self", "np.copy", fresh=True)
_method("astype", "self, dtype", "method.astype", fresh=True)
_method("item", "self", "method.item")
_method("round", "self, decimals=0", "np.round", differentiable=False)
_method("conj", "self", "method.conj")
_method("diagonal", "self, offset=0, axis1=0, axis2=1", "np.diagonal")
_method("items", "self", "method.items", accepts_zero=True)
_method("keys", "self", "method.keys", differentiable=False)
_method("values", "self", "method.values", accepts_zero=True)
_method("get", "self, key, default=None", "method.get", accepts_zero=True)
_method("index", "self, value", "method.index", differentiable=False)
_method("count", "self, value", "method.count", differentiable=False)
# (String methods that select parameters by name: `k.startswith("W")`.)
_method("startswith", "self, prefix", "method.startswith", differentiable=False)
_method("endswith", "self, suffix", "method.endswith", differentiable=False)


# The logistic function as the front end recognizes it in `1.0 / (1.0 + np.exp(-x))`
# (see `tapeless.frontend.expressions`): computed exactly that way, with a reverse rule
# from its value alone, `d * s * (1 - s)` (the rule of the three operations would keep
# `np.exp(-x)` for the backward pass and compute `1 + e` and its reciprocal again).
def logistic(x: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-x))


register(Primitive("logistic", logistic, "x", elementwise=True, fresh=True),
         logistic)
