"""Helpers that generated code calls at run time."""

from __future__ import annotations

import dataclasses
import operator
import weakref
from types import FunctionType as _FunctionType
from typing import Any


class _Unbound:
    """The value of a variable on a path where it was never assigned."""

    _instance: _Unbound | None = None

    def __new__(cls) -> _Unbound:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNBOUND"

    def __reduce__(self) -> str:
        return "UNBOUND"


UNBOUND = _Unbound()


def _count_all() -> Any:
    """The C function `np.count_nonzero(a)` calls where no axis is given, without the
    Python wrapper and its dispatch (0.2 µs a call in place of 0.6: a masked loop asks it
    on every trip, whether any element is still active)."""
    import importlib

    import numpy as np

    for name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(name).count_nonzero
        except (ImportError, AttributeError):
            continue
    return np.count_nonzero


# `np.count_nonzero(a)` of a whole array (the Python backend's spelling of it).
count_all = _count_all()


def check_bound(value: Any, name: str, where: str) -> Any:
    if value is UNBOUND:
        raise UnboundLocalError(
            f"{where}: local variable '{name}' is used before it is assigned on this path "
            f"(a loop that ran no iteration, or a branch that did not assign it); assign "
            f"'{name}' before the loop or the `if`")
    return value


def class_of(classinfo: Any) -> Any:
    """The class a J-callable stands for (a class passed as a value becomes one in
    derivative code), so that `isinstance(x, cls)` still tests against the class."""
    if type(classinfo) is tuple:
        return tuple(class_of(c) for c in classinfo)
    return getattr(classinfo, "__tapeless_class__", classinfo)


def as_sequence(iterable: Any) -> Any:
    """What a `for` loop indexes: sequences as they are, other iterables as a tuple."""
    if isinstance(iterable, (list, tuple, range)) or hasattr(iterable, "__array__"):
        return iterable
    return tuple(iterable)


def _zip_mismatch(lengths: list[int] | tuple[int, ...]) -> ValueError | None:
    for k in range(1, len(lengths)):
        if lengths[k] != lengths[0]:
            if k == 1:
                which = "argument 1"
            else:
                which = f"arguments 1-{k}"
            side = "shorter" if lengths[k] < lengths[0] else "longer"
            return ValueError(f"zip() argument {k + 1} is {side} than {which}")
    return None


def zip_strict(seqs: tuple[Any, ...]) -> tuple[Any, ...]:
    """`zip(*seqs, strict=True)`'s check: the sequences, once their lengths agree."""
    seqs = tuple(as_sequence(s) for s in seqs)
    error = _zip_mismatch([len(s) for s in seqs])
    if error is not None:
        raise error
    return seqs


def zip_strict_length(lengths: tuple[int, ...]) -> int:
    """The length of a `for` loop over `zip(..., strict=True)`: the common length, or
    CPython's ValueError."""
    error = _zip_mismatch(lengths)
    if error is not None:
        raise error
    return lengths[0]


def unpack(value: Any, n: int) -> Any:
    """`a, b = value`: the value, once its length is `n`, or CPython's error. (A value
    that is not a tuple, list or array (a dict, a range, a string...) becomes the tuple of
    its items, as CPython iterates it.)"""
    if isinstance(value, (tuple, list)):
        if len(value) == n:
            return value
        return _unpack_error(len(value), n)
    import numpy as np

    if isinstance(value, np.ndarray) and value.ndim > 0:
        length = value.shape[0]
    else:
        try:
            value = tuple(value)
        except TypeError:
            raise TypeError(f"cannot unpack non-iterable {type(value).__name__} "
                            "object") from None
        length = len(value)
    if length != n:
        _unpack_error(length, n)
    return value


def _unpack_error(length: int, n: int) -> Any:
    if length > n:
        raise ValueError(f"too many values to unpack (expected {n})")
    raise ValueError(f"not enough values to unpack (expected {n}, got {length})")


# --- calls of values in derivative code ----------------------------------------------
# In derivative code a function value is its J-callable: called, it returns (value,
# backpropagator). A value that is not (a callable object, a plain function held in a
# container, a NumPy function in a list) gets one from `DYNAMIC`, which the derivative
# API sets (`tapeless.dynamic`): the runtime knows no compiler.

DYNAMIC: Any = None
_GENERATED = "<tapeless-"


def is_generated(fn: Any) -> bool:
    """Whether `fn` is a function of tapeless's generated code."""
    return type(fn) is _FunctionType and fn.__code__.co_filename.startswith(_GENERATED)


def call_value(level: int, fn: Any, args: tuple) -> Any:
    """`fn(*args)` in derivative code of order `level`: a generated function is the
    J-callable of that order; any other callable gets one (compiled once, cached)."""
    if type(fn) is _FunctionType and fn.__code__.co_filename.startswith(_GENERATED):
        return fn(*args)
    return DYNAMIC.call(level, fn, args)


def call_value_fwd(level: int, fn: Any, t_fn: Any, args: tuple, tangents: tuple) -> Any:
    """Forward mode over `call_value(level, fn, args)`: `fn` is then the F-callable of a
    J-callable of order `level` (made by the transforms, or made here for a callee
    they could not see)."""
    if type(fn) is _FunctionType and fn.__code__.co_filename.startswith(_GENERATED):
        return fn(*args, *tangents)
    return DYNAMIC.call_value_fwd(level, fn, t_fn, args, tangents)


def transform_of(kind: str, fn: Any, argnums: Any, has_aux: bool) -> Any:
    """`tl.grad(fn, argnums, has_aux)` (or `tl.value_and_grad`) inside compiled code, of a
    function known only at run time (a function passed as an argument): the transformed
    function, made once per function (`DYNAMIC`, where the API knows the compiler)."""
    return DYNAMIC.transform(kind, fn, argnums, has_aux)


def stop_gradient(x: Any) -> Any:
    """`x`, as a constant for differentiation: its derivative is zero in every mode and
    at every order (`tl.stop_gradient`)."""
    return x


def checkpoint_name(x: Any, name: str) -> Any:
    """`x`, named for a checkpoint policy (`tl.checkpoint_name`,
    `tl.checkpoint_policies.save_only_these_names`): the identity in every mode."""
    return x


def call_fwd(fn: Any, t_fn: Any, args: tuple, tangents: tuple) -> Any:
    """`fn(*args)` in forward-mode code, where `fn` (whose tangent is `t_fn`) is known
    only at run time: its F-callable takes the arguments and then their tangents. A
    function of generated code is one; any other callable gets one (`DYNAMIC`: a Python
    function, a NumPy function, a callable object, whose fields' tangents are
    `t_fn`)."""
    if type(fn) is _FunctionType and fn.__code__.co_filename.startswith(_GENERATED):
        return fn(*args, *tangents)
    return DYNAMIC.call_fwd(fn, t_fn, args, tangents)


def generated_only(fn: Any) -> Any:
    """`fn`, refused unless it is a function of generated code: derivative code over
    forward-mode code over derivative code (the third order through a call of a value)
    calls only the functions it compiled."""
    if not is_generated(fn):
        from .errors import GradError

        raise GradError(f"{fn!r} is called through a function value in code differentiated "
                        "three times over (reverse or forward mode over forward mode over "
                        "derivative code); call the function by its name instead")
    return fn


def split_fwd(args: tuple, npos: int, defaults: tuple, star: bool) -> tuple:
    """The arguments `(*args, *tangents)` of an F-callable called the way Python calls a
    function value, laid out for F of a function with `npos` positional parameters (the
    last ones defaulting to `defaults`, whose tangents are zero) and, with `star`, a
    `*args` parameter that takes the rest (and a tuple of their tangents)."""
    m = len(args) // 2
    values, tangents = tuple(args[:m]), tuple(args[m:])
    missing = npos - m
    if missing > len(defaults) or (missing < 0 and not star):
        raise TypeError(f"a function of {npos} positional parameters called with {m} "
                        "arguments")
    if missing > 0:
        values = values + tuple(defaults[len(defaults) - missing:])
        tangents = tangents + (ZERO,) * missing
    if star:
        return values[:npos] + (values[npos:],) + tangents[:npos] + (tangents[npos:],)
    return values + tangents


def lift_fwd(value: Any) -> Any:
    """A value of the code around a `tl.jvp` called inside compiled code, as forward-mode
    code sees it: a function becomes its F-callable; data is itself."""
    return DYNAMIC.lift_fwd(value) if callable(value) else value


def data_only(value: Any) -> Any:
    """`value`, refused if it is a function: a function that reaches a `tl.jvp` inside
    compiled code from the code around it cannot be differentiated again there, unless it
    is a J- or F-callable that `lift_fwd` can derive again (`dynamic.derivable`)."""
    if callable(value) and not isinstance(value, type) and not DYNAMIC.derivable(value):
        from .errors import GradError

        raise GradError(f"{value!r} is passed into a tl.jvp called inside code that is "
                        "itself differentiated; call the function by its name inside the "
                        "function given to tl.jvp instead")
    return value


def data_only_grad(value: Any) -> Any:
    """`value`, refused if it is a function: forward-mode code holds a function value as
    its F-callable, from which a `tl.grad` called inside that code cannot make the
    J-callable it needs, unless it is an F-callable that `lift` can derive again with J
    innermost (`dynamic.derivable`)."""
    if callable(value) and not isinstance(value, type) and not DYNAMIC.derivable(value):
        from .errors import GradError

        raise GradError(f"{value!r} is passed into a tl.grad (or tl.vjp) called inside code "
                        "that forward mode differentiates; call the function by its name "
                        "inside the function given to tl.grad instead")
    return value


def lift(value: Any) -> Any:
    """A value passed into derivative code from the code around it (the arguments of a
    `tl.grad` called inside compiled code): a function becomes its J-callable, one order
    above the code it comes from; data is itself."""
    return DYNAMIC.lift(value) if callable(value) else value


# --- sensitivities ----------------------------------------------------------------------
# A sensitivity has the structure of its primal value, except: `ZERO` stands for a zero of
# any structure; a dataclass's sensitivity is a dict of its fields; a NamedTuple's is a
# plain tuple. `to_structure` converts back at the API boundary.


class _Zero:
    """The symbolic zero sensitivity: adding it costs nothing."""

    _instance: _Zero | None = None

    def __new__(cls) -> _Zero:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ZERO"

    def __reduce__(self) -> str:
        return "ZERO"

    def __getitem__(self, index: Any) -> _Zero:
        return self

    def __iter__(self) -> Any:
        # (Indexing gives ZERO again: without this, iterating would never end.)
        raise TypeError("the symbolic zero ZERO is not iterable")

    def __bool__(self) -> bool:
        return False

    # Arithmetic a sensitivity takes part in (a rule's `d * b`, a sum): the symbolic zero
    # gives what a zero gives, the symbolic zero where the result is zero (as JAX's
    # symbolic zeros, zero times anything is zero). The optimizer removes these where it
    # proves a sensitivity is not ZERO; this is what the code does where its proof does
    # not reach.
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """NumPy's ufuncs on ZERO (`array * ZERO`, `np.sum(ZERO)`): what a zero gives,
        rather than an object array of ZEROs; NotImplemented (a TypeError) for others."""
        if method in ("reduce", "accumulate"):
            return self
        if method != "__call__" or kwargs.get("out") is not None:
            return NotImplemented
        name = ufunc.__name__
        if name in ("multiply", "matmul", "negative", "positive") or \
                name in ("divide", "true_divide") and inputs[0] is self:
            return self
        if name == "add":
            return _fresh(inputs[1] if inputs[0] is self else inputs[0])
        if name == "subtract":
            return -inputs[1] if inputs[0] is self else _fresh(inputs[0])
        return NotImplemented

    def __neg__(self) -> _Zero:
        return self

    def __pos__(self) -> _Zero:
        return self

    def __mul__(self, other: Any) -> _Zero:
        return self

    __rmul__ = __mul__
    __matmul__ = __mul__
    __rmatmul__ = __mul__
    __truediv__ = __mul__
    __floordiv__ = __mul__

    def __add__(self, other: Any) -> Any:
        return _fresh(other)

    __radd__ = __add__

    def __sub__(self, other: Any) -> Any:
        return -other

    def __rsub__(self, other: Any) -> Any:
        return _fresh(other)


def _fresh(x: Any) -> Any:
    """`x` as `0 + x` gives it: a new array (the optimizer may update a sum's result in
    place, which must not change `x`)."""
    return x.copy() if hasattr(x, "__array__") and hasattr(x, "copy") else x


ZERO = _Zero()


def gadd(a: Any, b: Any) -> Any:
    """Add two sensitivities of the same value."""
    ta = type(a)
    if ta in _NUMBERS and type(b) in _NUMBERS:  # (the common case of scalar code)
        return a + b
    if a is ZERO:
        return b
    if b is ZERO:
        return a
    sparse = _SPARSE_TYPE[0]
    if ta is sparse and type(b) is sparse:
        # (the sum of two reads' sensitivities, first: recursion reading elements)
        r = a.plus(b)
        if r is not None:
            return r
    if ta is tuple:
        return tuple([y if x is ZERO else (x if y is ZERO else
                                           (x + y if type(x) is float and type(y) is float
                                            else gadd(x, y)))
                      for x, y in zip(a, b, strict=True)])
    if isinstance(a, tuple):
        return tuple(gadd(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, list):
        return [gadd(x, y) for x, y in zip(a, b, strict=True)]
    if isinstance(a, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = gadd(out[k], v) if k in out else v
        return out
    if sparse is not None:
        # (`+` does the same through NumPy's dispatch, several times slower)
        r = a.plus(b) if ta is sparse else (b.plus(a) if type(b) is sparse else None)
        if r is not None:
            return r
    return a + b


def zeros_like_value(x: Any) -> Any:
    """A materialized zero sensitivity for the value `x`."""
    if type(x) is float:
        return 0.0
    import numpy as np

    if isinstance(x, bool) or x is None or isinstance(x, str):
        return ZERO
    if isinstance(x, (float, int)):
        return 0.0
    if isinstance(x, np.ndarray):
        return np.zeros(x.shape, dtype=x.dtype if x.dtype.kind in "fc" else np.float64)
    if isinstance(x, np.generic):
        return np.zeros((), dtype=x.dtype if x.dtype.kind in "fc" else np.float64)[()]
    if isinstance(x, tuple):
        return tuple(zeros_like_value(v) for v in x)
    if isinstance(x, list):
        return [zeros_like_value(v) for v in x]
    if isinstance(x, dict):
        return {k: zeros_like_value(v) for k, v in x.items()}
    if is_struct(x):
        return {f: zeros_like_value(getattr(x, f)) for f in struct_fields(x)}
    if type(x) is _indexed_sens_type():
        # (a sensitivity, as a value of derivative code differentiated again)
        return np.zeros(x.shape)
    return ZERO


def ones_like_value(x: Any) -> Any:
    """A sensitivity for the value `x` that is 1 in every float (`zeros_like_value`'s
    structure): a point, away from the special case of a zero cotangent, at which to take
    the gradient of a function linear in it (a forward rule by transposition)."""
    z = zeros_like_value(x)
    if z is ZERO:
        return ZERO
    if isinstance(z, tuple):
        return tuple(ones_like_value(v) for v in x)
    if isinstance(z, list):
        return [ones_like_value(v) for v in x]
    if isinstance(z, dict):
        src = x if isinstance(x, dict) else {f: getattr(x, f) for f in struct_fields(x)}
        return {k: ones_like_value(v) for k, v in src.items()}
    return z + 1.0


def sens_of(d: Any, like: Any) -> Any:
    """`d`, with a symbolic zero made concrete (rules of array operations need values)."""
    return d if d is not ZERO else zeros_like_value(like)


def dense(d: Any, like: Any) -> Any:
    """`d` with every symbolic zero in it made concrete, shaped like the matching part of
    `like` (a primitive applied to tangents, in forward mode, needs values)."""
    if d is ZERO:
        return zeros_like_value(like)
    if isinstance(d, tuple) and isinstance(like, tuple):
        return tuple(dense(x, y) for x, y in zip(d, like, strict=True))
    if isinstance(d, list) and isinstance(like, list):
        return [dense(x, y) for x, y in zip(d, like, strict=True)]
    return d


def is_struct(x: Any) -> bool:
    import dataclasses

    return dataclasses.is_dataclass(x) and not isinstance(x, type)


def struct_fields(x: Any) -> list[str]:
    import dataclasses

    return [f.name for f in dataclasses.fields(x)]


def to_structure(sens: Any, like: Any) -> Any:
    """The gradient for argument `like`: its structure, zeros filled in."""
    t = type(like)
    if t is _F8[1] and type(sens) is t and sens.dtype is like.dtype and \
            sens.shape == like.shape and like.dtype.kind in "fc":
        # (An array argument's gradient, an array of its kind: the last case below,
        # first, without the tests of the other structures.)
        return sens.copy() if sens is like or not sens.flags.owndata else sens
    import numpy as np

    if type(like) is _indexed_sens_type():
        like = like.dense()
    if isinstance(like, (bool, np.bool_)) or \
            (isinstance(like, np.ndarray) and like.dtype.kind == "b"):
        # A bool is never differentiated: the gradient holds it as it is, like a static
        # field (`Net(W, relu=True)`'s gradient is `Net(dW, relu=True)`), whatever the
        # code computed with it.
        return like
    if sens is ZERO:
        sens = zeros_like_value(like)
        if sens is ZERO:
            # A leaf with no sensitivity of its own (None, a string, a function, ...)
            # stays as it is, like a static field: the symbolic zero never escapes.
            return like
    if isinstance(like, tuple):
        items = [to_structure(s, v) for s, v in zip(sens, like, strict=True)]
        return type(like)(*items) if hasattr(like, "_fields") else tuple(items)
    if isinstance(like, list):
        return [to_structure(s, v) for s, v in zip(sens, like, strict=True)]
    if isinstance(like, dict):
        return {k: to_structure(sens.get(k, ZERO), v) for k, v in like.items()}
    if is_struct(like):
        import dataclasses

        return dataclasses.replace(like, **{f: to_structure(sens.get(f, ZERO),
                                                            getattr(like, f))
                                            for f in struct_fields(like)})
    if isinstance(like, np.ndarray):
        out = np.asarray(sens, dtype=like.dtype if like.dtype.kind in "fc" else np.float64)
        if out.shape != like.shape:
            return np.broadcast_to(out, like.shape).copy()
        # The caller owns the gradient: not a view (a read-only broadcast number) or the
        # argument itself.
        return out.copy() if out is like or not out.flags.owndata else out
    if isinstance(like, float) and isinstance(sens, np.ndarray) and sens.ndim == 0:
        return float(sens)
    if isinstance(like, float) and isinstance(sens, np.floating):
        return float(sens)
    return sens


def replace_fields(like: Any, names: tuple, values: tuple) -> Any:
    """`like` with these fields replaced (`dataclasses.replace`): the gradient of a
    dataclass, from its fields' (the optimizer's `to_structure` of a dataclass of known
    kind)."""
    import dataclasses

    return dataclasses.replace(like, **dict(zip(names, values, strict=True)))


def without_fields(d: Any, like: Any, names: tuple) -> Any:
    """The sensitivity `d` of a dataclass or NamedTuple like `like`, with the fields
    `names` zero (what `dataclasses.replace` leaves of the original's sensitivity)."""
    if d is ZERO or not names:
        return d
    if isinstance(d, dict):
        return {k: v for k, v in d.items() if k not in names}
    fields = list(like._fields)
    drop = {fields.index(n) for n in names}
    return tuple(ZERO if i in drop else v for i, v in enumerate(d))


def fields_of(obj: Any) -> tuple:
    """`dataclasses.fields(obj)`, as compiled code calls it."""
    import dataclasses

    return dataclasses.fields(obj)


def dict_merge(parts: tuple) -> dict:
    """`{**a, "k": v, **b}`: the dicts `parts` merged in order, later keys winning."""
    out: dict = {}
    for p in parts:
        out.update(p)
    return out


def dict_merge_sens(d: Any, parts: tuple, i: int) -> Any:
    """The sensitivity of `parts[i]` given `d`, that of their merge: its keys that no
    later part overwrites."""
    if d is ZERO:
        return ZERO
    later = {k for p in parts[i + 1:] for k in p}
    return {k: d.get(k, ZERO) for k in parts[i] if k not in later}


def own(x: Any) -> Any:
    """A copy of the array `x` for the caller of a gradient to own (the optimizer's
    `to_structure` of an array that may be a read-only view or another argument)."""
    import numpy as np

    if type(x) is _indexed_sens_type():
        return x.dense()
    return x.copy() if isinstance(x, np.ndarray) else x  # (numbers are immutable)


def dense_sens(d: Any) -> Any:
    """`d`, built as an array where it is a sparse sensitivity (`sparse_sens`): a
    gradient the caller receives (the optimizer's `own` of a result that is new)."""
    return d.dense() if type(d) is _indexed_sens_type() else d


def from_structure(value: Any) -> Any:
    """The internal sensitivity form of a user-given cotangent."""
    if isinstance(value, tuple):
        return tuple(from_structure(v) for v in value)
    if isinstance(value, list):
        return [from_structure(v) for v in value]
    if isinstance(value, dict):
        return {k: from_structure(v) for k, v in value.items()}
    if is_struct(value):
        return {f: from_structure(getattr(value, f)) for f in struct_fields(value)}
    if value is None:
        return ZERO
    return value


_SCALARS = (float, int)
# Python's numbers and, once NumPy is imported by a helper, its float64 scalar (what reading
# an element of a float64 array gives): sensitivities that add and broadcast as numbers.
_NUMBERS: set[type] = {float, int}


def _note_numpy_numbers() -> None:
    import numpy as np

    _NUMBERS.add(np.float64)


def unbroadcast(d: Any, x: Any) -> Any:
    """Sum `d` down to the shape of `x` (undoing NumPy broadcasting)."""
    if d is ZERO:
        return ZERO
    if type(x) in _NUMBERS and type(d) in _NUMBERS:
        return d
    import numpy as np

    if np.float64 not in _NUMBERS:
        _note_numpy_numbers()
    if type(x) is np.ndarray and type(d) is np.ndarray and x.shape == d.shape:
        return d
    dshape = np.shape(d)
    xshape = np.shape(x)
    if dshape == xshape:
        if isinstance(x, float) and not isinstance(d, float):
            return float(d)
        return d
    if not xshape:
        total = np.sum(d)
        return float(total) if isinstance(x, (float, int)) else total
    lead = len(dshape) - len(xshape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(xshape)
                                      if n == 1 and dshape[i + lead] != 1)
    out = np.sum(d, axis=axes, keepdims=True) if axes else d
    if lead:
        out = out.reshape(out.shape[lead:])
    return out


def broadcast_like(d: Any, x: Any) -> Any:
    """Broadcast `d` to the shape of `x` (the adjoint of `unbroadcast`)."""
    if d is ZERO:
        return ZERO
    if type(d) in _NUMBERS and type(x) in _NUMBERS:
        return d
    import numpy as np

    shape = np.shape(x)
    if np.shape(d) == shape:
        return d
    return np.broadcast_to(d, shape)


def reshape_like(d: Any, x: Any) -> Any:
    import numpy as np

    if d is ZERO:
        return ZERO
    if not np.shape(x) and not isinstance(x, np.ndarray):
        return float(np.sum(d)) if isinstance(x, float) else np.reshape(d, ())
    return np.reshape(d, np.shape(x))


def expand_reduced(d: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    """Re-insert the axes a reduction over `axis` removed, then broadcast to `x`."""
    import numpy as np

    if d is ZERO:
        return ZERO
    shape = np.shape(x)
    if axis is not None and not keepdims and shape:  # (NumPy lets a 0-d array have axis 0)
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        axes = tuple(a % len(shape) for a in axes)
        d = np.expand_dims(d, axes)
    return np.broadcast_to(d, shape)


def reduced_axes(x: Any, axis: Any) -> tuple:
    """The axes of x a reduction over `axis` reduces, as non-negative ints in order."""
    import numpy as np

    ndim = np.ndim(x)
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a % ndim for a in axes))


def reduced_count(x: Any, axis: Any) -> int:
    import numpy as np

    shape = np.shape(x)
    if axis is None:
        return int(np.prod(shape)) if shape else 1
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    n = 1
    for a in axes:
        n *= shape[a]
    return n


def tuple_sens(d: Any, i: Any, like: Any) -> Any:
    """The sensitivity of the sequence `like` when only `like[i]` has sensitivity `d`.
    (`like` may itself be the symbolic zero, in derivative code: its parts are zeros
    whatever happens to them, so they have no sensitivity.)"""
    if d is ZERO or like is ZERO:
        return ZERO
    n = len(like)
    if isinstance(i, slice):
        out = [ZERO] * n
        for k, j in enumerate(range(*i.indices(n))):
            out[j] = d[k]
    else:
        out = [ZERO] * n
        out[i] = d
    return list(out) if isinstance(like, list) else tuple(out)


def getitem_sens(d: Any, x: Any, index: Any) -> Any:
    """The sensitivity of `x` given that of `x[index]` (linear in `d`)."""
    if type(x) is _F8[1]:
        t = type(d)
        if (t is float or t is _F8[2]) and x.dtype is _F8[0] and \
                (type(index) is int or _int_tuple(index)):
            # One element of a float64 array (what scalar code reads): the general
            # case's result, without its checks.
            if x.size >= _SPARSE_MODULE[0].SPARSE_MIN_SIZE:
                return _SPARSE_TYPE[0](x.shape, None, [(index, d)], 1)
            out = _F8[3](x.shape)
            out[index] = d
            return out
    import numpy as np

    if d is ZERO or x is ZERO:
        return ZERO
    if _F8[1] is None:
        _indexed_sens_type()  # (the fast path's types, for the next call)
    if isinstance(x, (tuple, list)):
        return tuple_sens(d, index, x)
    if isinstance(x, dict):
        return {index: d}
    if type(x) is np.ndarray:
        sparse = _indexed_sens(d, x, index)  # (None for an advanced index)
        if sparse is not None:
            return sparse
    elif type(x) is _indexed_sens_type():
        x = x.dense()  # (in derivative code differentiated again)
    if isinstance(x, (np.ndarray, np.generic)):
        out = np.zeros(np.shape(x), dtype=np.result_type(x, d, np.float64)
                       if np.result_type(x).kind not in "fc" else np.result_type(x, d))
        if _advanced(index):
            if not _scatter_add(out, index, d):
                np.add.at(out, index, d)
        else:
            out[index] = d
        return out
    if isinstance(x, (range, str, bytes, *_index_tricks())):
        return ZERO
    raise TypeError(f"cannot differentiate indexing into {type(x).__name__}")


def _indexed_sens(d: Any, x: Any, index: Any) -> Any:
    from .sparse_sens import indexed_sens

    globals()["_indexed_sens"] = indexed_sens  # (imported once, on first use)
    return indexed_sens(d, x, index)


def _indexed_sens_type() -> Any:
    """`sparse_sens.IndexedSens` (imported on first use: it needs NumPy)."""
    t = _SPARSE_TYPE[0]
    if t is None:
        import numpy as np

        from . import sparse_sens

        _SPARSE_MODULE[0] = sparse_sens
        _F8[:] = [np.dtype(np.float64), np.ndarray, np.float64, np.zeros]
        t = _SPARSE_TYPE[0] = sparse_sens.IndexedSens
    return t


_SPARSE_TYPE: list[Any] = [None]
_SPARSE_MODULE: list[Any] = [None]  # sparse_sens (its thresholds are read where used)


def _index_tricks() -> tuple:
    """NumPy's indexing helper objects (np.r_, np.c_, np.s_, np.mgrid, ...): they hold no
    numbers of their own, so indexing into one gives them no sensitivity."""
    import numpy as np

    return (type(np.r_).__mro__[1], type(np.s_), type(np.mgrid).__mro__[1])


def index_sens(d: Any, x: Any, index: Any) -> Any:
    """The sensitivity of `index` given that of `x[index]`: none when `x` is a container
    or an array (an index selects, it is not differentiated). Indexing into another
    object calls its `__getitem__`, whose result may depend on the index's numbers in
    a way tapeless does not know: that raises rather than give the index a zero
    sensitivity (a wrong gradient), unless the index holds no float."""
    import numpy as np

    if d is ZERO or isinstance(x, (tuple, list, dict, str, bytes, range, np.ndarray,
                                   np.generic)) or not holds_float(index):
        return ZERO
    raise TypeError(f"cannot differentiate indexing into {type(x).__name__} with respect "
                    "to the index")


def holds_float(index: Any) -> bool:
    import numpy as np

    if isinstance(index, (tuple, list)):
        return any(holds_float(i) for i in index)
    if isinstance(index, slice):
        return any(holds_float(i) for i in (index.start, index.stop, index.step))
    if isinstance(index, (float, complex)):
        return True
    if isinstance(index, (np.ndarray, np.generic)):
        return np.result_type(index).kind in "fc"
    return False


def index_concat(axis: int, items: tuple) -> Any:
    """`np.r_[items]` (axis 0) or `np.c_[items]` (axis -1): what the front end compiles
    those subscripts to (items: a tuple of arrays, numbers and slices)."""
    import numpy as np

    return (np.r_ if axis == 0 else np.c_)[items]


def _index_concat_sizes(axis: int, items: tuple) -> list:
    """How many entries along `axis` each item fills in `index_concat(axis, *items)`."""
    import numpy as np

    sizes = []
    for it in items:
        if isinstance(it, slice):
            sizes.append(np.shape(index_concat(axis, (it,)))[axis])
            continue
        shape = np.shape(it)
        if axis == 0:
            sizes.append(shape[0] if shape else 1)
        else:  # np.c_: numbers and 1-d arrays become one column
            sizes.append(shape[-1] if len(shape) >= 2 else 1)
    return sizes


def index_concat_sens(d: Any, axis: int, items: tuple) -> tuple:
    """The sensitivities of the items of `index_concat(axis, *items)` given that of its
    result (none for a slice, which is a range of constants)."""
    import numpy as np

    if d is ZERO:
        return (ZERO,) * len(items)
    sizes = _index_concat_sizes(axis, items)
    pieces = np.split(d, list(np.cumsum(sizes)[:-1]), axis)
    return tuple(ZERO if isinstance(it, slice) else reshape_like(p, it)
                 for p, it in zip(pieces, items, strict=True))


def index_concat_dense(ds: Any, axis: int, items: tuple) -> Any:
    """The transpose of `index_concat_sens`: the items' sensitivities `ds` (ZERO where
    there is none) laid out as `index_concat(axis, *items)` lays out the items."""
    import numpy as np

    if ds is ZERO:
        return ZERO
    parts: list[Any] = []
    for it, size, p in zip(items, _index_concat_sizes(axis, items), ds, strict=True):
        if isinstance(it, slice):
            parts.append(np.zeros(size))
        else:
            parts.append(sens_of(p, it) if not isinstance(it, (int, bool)) else 0.0)
    return index_concat(axis, tuple(parts))


def scatter_sens(x: Any, indices: tuple, ds: tuple) -> Any:
    """The sum of `getitem_sens(d, x, index)` over the pairs: for an array, one zero array,
    the first piece written into it and the others added in place (the gradient of several
    slices of one array). An array x's values are never read: its type, shape and dtype
    are."""
    if type(x) is _F8[1]:
        fast = _sparse_elements(x, indices, ds)
        if fast is not None:
            return fast
    import numpy as np

    if _F8[2] is None:
        _indexed_sens_type()  # (the fast path's types, for the next call)
    pieces = [(i, d) for i, d in zip(indices, ds, strict=True) if d is not ZERO]
    if not pieces or x is ZERO:
        return ZERO
    if type(x) is list and all(type(i) is int for i, _ in pieces):
        elements: list[Any] = [ZERO] * len(x)  # their sensitivities, ZERO elsewhere
        for i, d in pieces:
            elements[i] = gadd(elements[i], d)
        return elements
    if not isinstance(x, np.ndarray) or np.result_type(x).kind not in "fc":
        total: Any = ZERO
        for i, d in pieces:
            total = gadd(total, getitem_sens(d, x, i))
        return total
    if type(x) is np.ndarray:
        # (the module `_indexed_sens_type` imported above: no import statement per call)
        sparse = _SPARSE_MODULE[0].indexed_pieces(x, pieces)
        if sparse is not None:
            return sparse
    dtype = x.dtype
    for _, d in pieces:
        dd = getattr(d, "dtype", None)
        if dd is not None and dd != dtype:
            dtype = np.result_type(dtype, dd)
    out = np.zeros(x.shape, dtype=dtype)
    first = True
    for i, d in pieces:
        if type(i) in _BASIC or not _advanced(i):
            # (The first piece is written, not added: `out` is zero there, and a copy
            # into a strided part of it costs a third of an add in place.)
            if first:
                out[i] = d
            else:
                out[i] += d
        elif not _scatter_add(out, i, d):
            np.add.at(out, i, d)
        first = False
    return out


_BASIC = (int, slice)
_BINCOUNT_MIN = 256  # gathered elements from which _scatter_add uses np.bincount



def scatter_add(acc: Any, x: Any, indices: tuple, ds: tuple) -> Any:
    """`gadd(acc, scatter_sens(x, indices, ds))`, added into `acc` in place where `acc` is
    a float array, a sparse sensitivity (its pieces appended, until they would number
    1/SPARSE_FRACTION of the array: then the dense array) or a list of x's shape and the
    indices are distinct ints or tuples of ints (so the sums are the same). Only for an
    accumulator that nothing else holds: the optimizer makes it for loop state that
    starts as ZERO and only gathers such sensitivities. (Called once per iteration of a
    loop: the common cases are tested cheaply first.)"""
    if acc is ZERO:
        return scatter_sens(x, indices, ds)
    if not _element_indices(indices):
        return gadd(acc, scatter_sens(x, indices, ds))
    t = type(acc)
    if t is _SPARSE_TYPE[0] and type(x) is _F8[1] and x.shape == acc.shape and \
            acc.add_pieces(indices, ds, _SPARSE_MODULE[0].SPARSE_FRACTION, ZERO):
        return acc  # (the pieces appended in place: the common case, first)
    if t is list:
        if type(x) is list and len(acc) == len(x):
            for i, d in zip(indices, ds, strict=True):
                if d is not ZERO:
                    a = acc[i]
                    acc[i] = d if a is ZERO else gadd(a, d)
            return acc
        return gadd(acc, scatter_sens(x, indices, ds))
    if t is _indexed_sens_type():
        # (Not appended above: many pieces, pieces not worth keeping, or a handle whose
        # list another extends: the dense array, a new one, takes them.)
        if getattr(x, "shape", None) != acc.shape:
            return gadd(acc, scatter_sens(x, indices, ds))
        acc = acc.dense()
        t = type(acc)
    f8 = _F8[0]  # (set: the type of a sparse sensitivity was asked for above)
    if t is _F8[1] and type(x) is t and acc.shape == x.shape and \
            (acc.dtype is f8 or acc.dtype == f8):
        for d in ds:
            if d is not ZERO and type(d) is not float:
                dtype = getattr(d, "dtype", None)
                if dtype is not f8 and dtype != f8:
                    return gadd(acc, scatter_sens(x, indices, ds))
        for i, d in zip(indices, ds, strict=True):
            if d is not ZERO:
                acc[i] += d
        return acc
    return gadd(acc, scatter_sens(x, indices, ds))


def scatter_onto(acc: Any, x: Any, indices: tuple, ds: tuple) -> Any:
    """`gadd(scatter_sens(x, indices, ds), acc)`, leaving `acc` as it is (it may be
    shared): where acc is a sparse sensitivity of the float64 array `x` and the pieces
    are float64 numbers at elements, a new handle with the pieces appended (O(the
    pieces), where the sum builds two handles and joins them). A recursion reading a few
    elements per call adds them so into what the recursive call gave back."""
    t = type(acc)
    if t is _SPARSE_TYPE[0] and type(x) is _F8[1] and x.shape == acc.shape:
        r = acc.appended(indices, ds, _SPARSE_MODULE[0].SPARSE_FRACTION, ZERO)
        if r is not None:
            return r
    elif t is _F8[1] and type(x) is t and acc.shape == x.shape and acc.dtype is _F8[0] \
            and _element_indices(indices):
        # (A small array's dense sensitivity: one copy with the pieces added, where the
        # sum makes zeros, adds the pieces and adds the two arrays. The indices are
        # distinct: each element gets acc's value plus its one piece, the same sum.)
        out = _copy_with_pieces(acc, indices, ds)
        if out is not None:
            return out
    return gadd(scatter_sens(x, indices, ds), acc)


def _copy_with_pieces(acc: Any, indices: tuple, ds: tuple) -> Any:
    """A copy of the float64 array `acc` with each number piece of `ds` added at its
    (distinct) index; None where every piece is ZERO or one is not a number (the callers
    then add them the general way)."""
    out = None
    for i, d in zip(indices, ds, strict=True):
        if d is ZERO:
            continue
        if type(d) is not float and type(d) is not _F8[2]:
            return None
        if out is None:
            out = acc.copy()
        out[i] += d
    return out


def scatter_onto_known(acc: Any, x: Any, indices: tuple, ds: tuple) -> Any:
    """`scatter_onto` where the optimizer proved, from kinds, that `x` is a float64 array
    and the indices are ints or tuples of ints (in range of x's axes): the same result,
    without testing the indices (a recursion reading elements calls it once per call).
    The pieces are still tested (numbers are kept as pieces, anything else is added
    densely)."""
    t = type(acc)
    if t is _SPARSE_TYPE[0]:
        # (the common case, inline: a handle at the end of its list, few pieces, every
        # piece a float64 number; one line less here is a few per cent of a recursion's
        # backward pass)
        if acc.shape == x.shape:
            pieces = acc.pieces
            count = acc.count
            if count == len(pieces) and \
                    (count + len(ds)) * _SPARSE_MODULE[0].SPARSE_FRACTION < x.size:
                for d in ds:
                    if type(d) is not _F8[2] and type(d) is not float:
                        break
                else:
                    for i, d in zip(indices, ds, strict=True):
                        pieces.append((i, d))
                    return t(acc.shape, acc.base, pieces, len(pieces))
            r = acc.appended_elements(indices, ds, _SPARSE_MODULE[0].SPARSE_FRACTION, ZERO)
            if r is not None:
                return r
    elif t is _F8[1] and acc.dtype is _F8[0] and acc.shape == x.shape:
        n = len(indices)
        if n < 2 or (indices[0] != indices[1] if n == 2 else len(set(indices)) == n):
            # (distinct elements: each gets acc's value plus its one piece, the sum
            # `scatter_onto` gives)
            out = _copy_with_pieces(acc, indices, ds)
            if out is not None:
                return out
    return scatter_onto(acc, x, indices, ds)


# np.dtype(np.float64), np.ndarray, np.float64 and np.zeros, once NumPy is needed
# (set with the sparse type: `_F8[1]` is an ndarray's type only once both are)
_F8: list[Any] = [None, None, None, None]


def _sparse_elements(x: Any, indices: tuple, ds: tuple) -> Any:
    """`scatter_sens` of float64 numbers at elements of the float64 array `x` (ints or
    tuples of ints), where that is sparse (`sparse_sens.indexed_pieces`), made without
    the general checks (a recursion reading a few elements per call makes one per call);
    None where they do not apply."""
    if _SPARSE_TYPE[0] is None:
        _indexed_sens_type()
    if x.dtype is not _F8[0] or x.size < _SPARSE_MODULE[0].SPARSE_MIN_SIZE:
        return None
    pieces = []
    for i, d in zip(indices, ds, strict=True):
        if d is ZERO:
            continue
        t = type(d)
        if t is not float and t is not _F8[2]:
            return None
        if type(i) is not int:
            if type(i) is not tuple:
                return None
            for p in i:
                if type(p) is not int:
                    return None
        pieces.append((i, d))
    if not pieces:
        return ZERO
    return _SPARSE_TYPE[0](x.shape, None, pieces, len(pieces))


def _int_tuple(index: Any) -> bool:
    """Whether `index` is a tuple of ints (an element of an array)."""
    if type(index) is not tuple:
        return False
    for p in index:
        if type(p) is not int:
            return False
    return True


def _element_indices(indices: tuple) -> bool:
    """Whether `indices` are distinct ints or tuples of ints (elements, or rows, of an
    array or items of a list: adding the pieces one by one into an accumulator gives the
    sums `scatter_sens` gives; a repeated one is summed first there)."""
    for i in indices:
        if type(i) is not int:
            if type(i) is not tuple:
                return False
            for p in i:
                if type(p) is not int:
                    return False
    n = len(indices)
    return n < 2 or (indices[0] != indices[1] if n == 2 else len(set(indices)) == n)


def fdiv(a: Any, b: Any) -> Any:
    """`a / b`, with the IEEE result (inf, -inf or nan, as NumPy gives) where Python's
    float division raises: the reverse rules of `math.sqrt`, `math.asin`, ... at the ends
    of their domains, where the value is defined and the derivative infinite (it may
    well be multiplied by nothing that matters: `math.acos(float(n))` with n an int)."""
    try:
        return a / b
    except ZeroDivisionError:
        return _ieee(a, b, operator.truediv)


def fpow(a: Any, b: Any) -> Any:
    """`a ** b`, with the IEEE result where Python raises (`0.0 ** -0.5`)."""
    try:
        return a ** b
    except ZeroDivisionError:
        return _ieee(a, b, operator.pow)


def _ieee(a: Any, b: Any, op: Any) -> float:
    import numpy as np

    with np.errstate(all="ignore"):
        return float(op(np.float64(a), np.float64(b)))


def matmul_tn(a: Any, b: Any, block: int) -> Any:
    """`swapaxes(a, -1, -2) @ b`, summed over blocks of `block` rows of a and b (the axis
    the product contracts). The optimizer uses it where that axis is long and the result
    small (see `tapeless.opt.arrays.block_products`): there OpenBLAS runs the blocks
    faster than the one product."""
    import numpy as np

    n = a.shape[-2]
    out = np.swapaxes(a[..., :block, :], -1, -2) @ b[..., :block, :]
    for i in range(block, n, block):
        out += np.swapaxes(a[..., i:i + block, :], -1, -2) @ b[..., i:i + block, :]
    return out


def max_sens(d: Any, a: Any, b: Any) -> Any:
    """The sensitivity of `a` in `np.maximum(a, b)` given `d`, that of the result: d where
    a > b, half of d where a == b (ties share, as autograd and JAX do), else `d * 0`.
    The same values as `d * np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))`, which
    the reverse rule computes, with one comparison and a product where nothing ties
    (ReLU's gradient, as written by hand). The optimizer makes it for float64 arrays
    (`tapeless.opt.arrays.max_sens_one_comparison`)."""
    import numpy as np

    out = d * np.greater(a, b)
    ties = np.equal(a, b)
    if ties.any():
        out = np.where(ties, 0.5 * d, out)
    return out


def where_zero(condition: Any, x: Any) -> Any:
    """`np.where(condition, x, 0.0)` for a float64 array x of the result's shape and a
    boolean array condition: `x * condition` where x is finite (ReLU's `np.where(z > 0,
    z, 0.0)` and its gradient `np.where(z > 0, d, 0.0)`: NumPy's where on an irregular
    mask takes 4-6 times the product's time). The same values, up to the sign of a zero
    (-0.0 where x is negative and the condition false). The optimizer makes it
    (`tapeless.opt.arrays.where_zero_as_product`)."""
    import numpy as np

    if np.isfinite(x).all():
        return x * condition
    return np.where(condition, x, 0.0)


def element_sens_small(d: Any, x: Any, index: Any) -> Any:
    """`getitem_sens(d, x, index)` where the optimizer proved x a float64 array smaller
    than `sparse_sens.SPARSE_MIN_SIZE` and `index` an element's ints (so `d` is a real
    number or ZERO): the same ZERO or new dense array, without the tests."""
    if d is ZERO:
        return ZERO
    import numpy as np

    out = np.zeros(x.shape)
    out[index] = d
    return out


def gadd_owned(a: Any, b: Any) -> Any:
    """`gadd(a, b)` where the optimizer proved each ZERO or an array that nothing else
    holds, of one shape (`opt.scatter.OwnedSlots`: what a recursion's backpropagators
    give back for a small array): the sum is made into `a`, in place."""
    if a is ZERO:
        return b
    if b is not ZERO:
        a += b
    return a


def add_into_known(acc: Any, index: Any, d: Any) -> Any:
    """`acc[index] += d`, in place: the Python backend writes it as that statement. Only
    the optimizer makes it, for a backward loop's accumulator of a float64 array's element
    or row reads that it starts as the array's zeros before the loop and nothing else
    reads (`tapeless.opt.loops.accumulate_in_place`)."""
    acc[index] += d
    return acc


def scatter_add_known(acc: Any, x: Any, indices: tuple, ds: tuple) -> Any:
    """`scatter_add` without its tests, where the optimizer proved them: `x` is a float64
    array (or a list of float64 values of one shape), the indices are ints and the pieces
    are float64 values of an element's shape, never ZERO. Called once per iteration of a
    backward loop (the LSTM's gradient of its parameter rows). An index given twice sums
    like `scatter_add` (its pieces first), so the result is the same to the bit. The
    indices may also be tuples of ints (elements of a matrix: a recursion's or a loop's
    reads `A[i, j]`)."""
    n = len(indices)
    if 0 < n <= 2 and type(x) is not list:  # (one or two pieces into an array: first)
        if acc is ZERO:
            import numpy as np

            acc = np.zeros(x.shape)
        if n == 1:
            acc[indices[0]] += ds[0]
            return acc
        # (Two reads per iteration, `A[i, i] * A[i, j]`: half the time of the general
        # path below, which the walk's loop spends most of its gradient in.)
        i, j = indices
        if i == j:
            acc[i] += ds[0] + ds[1]
        else:
            acc[i] += ds[0]
            acc[j] += ds[1]
        return acc
    if n == 2:  # (two reads into a list)
        if indices[0] == indices[1]:
            indices, ds = indices[:1], (ds[0] + ds[1],)
    elif n > 2 and len(set(indices)) != n:
        # (An index given twice: its pieces summed first, as `scatter_sens` sums them,
        # then added in place like the others.)
        merged: dict[Any, Any] = {}
        for i, d in zip(indices, ds, strict=True):
            merged[i] = merged[i] + d if i in merged else d
        indices, ds = tuple(merged), tuple(merged.values())
    if type(x) is list:
        if acc is ZERO:
            acc = [ZERO] * len(x)
        for i, d in zip(indices, ds, strict=True):
            a = acc[i]
            acc[i] = d if a is ZERO else a + d
        return acc
    if acc is ZERO:
        import numpy as np

        acc = np.zeros(x.shape)
    for i, d in zip(indices, ds, strict=True):
        acc[i] += d
    return acc


def scatter_add_pair_known(acc: Any, x: Any, i: Any, j: Any, di: Any, dj: Any) -> Any:
    """`scatter_add_known(acc, x, (i, j), (di, dj))`, the two pieces passed as they are:
    the call builds no tuple of indices or of pieces and tests nothing it does not need
    (the Python backend's form of a two-piece `scatter_add_known` whose indices and pieces
    the program makes as tuple displays, `A[i, i] * A[i, j]` read once per recursive call
    or loop step: `tapeless.opt.scatter.scatter_pairs`). The same sums to the bit: an
    index given twice adds its two pieces first."""
    if type(x) is list:
        if acc is ZERO:
            acc = [ZERO] * len(x)
        if i == j:
            a, d = acc[i], di + dj
            acc[i] = d if a is ZERO else a + d
        else:
            a = acc[i]
            acc[i] = di if a is ZERO else a + di
            a = acc[j]
            acc[j] = dj if a is ZERO else a + dj
        return acc
    if acc is ZERO:
        import numpy as np

        acc = np.zeros(x.shape)
    if i == j:
        acc[i] += di + dj
    else:
        acc[i] += di
        acc[j] += dj
    return acc


def _scatter_add(out: Any, index: Any, d: Any) -> bool:
    """`np.add.at(out, index, d)` with np.bincount, for float64 `out` and an index of
    whole slices around one integer array (`x[:, idx]`) that gathers at least
    `_BINCOUNT_MIN` elements, where it is several times faster (4x for the GMM's
    10 x 64 x 64 gather with NumPy 2.4; np.add.at is the faster one for a few dozen
    elements); the sums are the same (bincount adds in the same order). False where the
    index has another form."""
    import numpy as np

    parts = index if isinstance(index, tuple) else (index,)
    arrays = [i for i, p in enumerate(parts) if isinstance(p, np.ndarray)]
    if len(arrays) != 1 or out.dtype != np.float64 or len(parts) > out.ndim:
        return False
    k = arrays[0]
    idx = parts[k]
    if idx.dtype.kind not in "iu" or any(
            not (type(p) is slice and p == slice(None)) for i, p in enumerate(parts) if i != k):
        return False
    n = out.shape[k]
    lead = 1
    for s in out.shape[:k]:
        lead *= s
    trail = out.size // (lead * n) if n else 0
    if lead * idx.size * trail < _BINCOUNT_MIN:
        return False
    d = np.broadcast_to(np.asarray(d, dtype=np.float64),
                        out.shape[:k] + idx.shape + out.shape[k + 1:])
    if n == 0 or d.size == 0:
        return True
    if idx.size and (idx.min() < -n or idx.max() >= n):
        return False  # let np.add.at raise its IndexError
    flat = np.where(idx < 0, idx + n, idx).reshape(-1)
    pos = np.arange(lead)[:, None] * n + flat
    if trail != 1:  # (a trailing axis of length 1 makes NumPy's broadcasting slow)
        pos = pos[:, :, None] * trail + np.arange(trail)
    out += np.bincount(pos.reshape(-1), weights=d.reshape(-1),
                       minlength=out.size).reshape(out.shape)
    return True


def _advanced(index: Any) -> bool:
    import numpy as np

    if type(index) is tuple:
        for p in index:
            if isinstance(p, (list, np.ndarray)):
                return True
        return False
    return isinstance(index, (list, np.ndarray))


def is_method(x: Any, name: str) -> bool:
    """Whether `x.name` is a method of `x`'s class written in Python (a bound method, whose
    sensitivity in derivative code is its object's: `tapeless.dynamic.call`)."""
    for klass in type(x).__mro__:
        if name in vars(klass):
            return isinstance(vars(klass)[name], _FunctionType) and \
                name not in getattr(x, "__dict__", {})
    return False


def user_method(x: Any, name: str) -> Any:
    """`x.name` for a call `x.name(...)` whose method name a built-in type's method also
    has (`opt.update(p, g)`, `model.encode(x)`): the user's bound method; a built-in
    receiver (a list, dict, string, array, number) is refused, as when compiling, since
    its method would change it in place or is not supported."""
    import numpy as np

    if isinstance(x, (np.ndarray, np.generic, list, tuple, dict, str, float, int)):
        from .errors import CompileError

        raise CompileError(f"the method .{name}() of a {type(x).__name__} is not supported "
                           "(it changes its object in place, or has no primitive); build a "
                           "new value instead, or call the corresponding NumPy function")
    return getattr(x, name)


def getattr_sens(d: Any, x: Any, name: str) -> Any:
    """The sensitivity of `x` given that of `x.name`."""
    if d is ZERO or x is ZERO:
        return ZERO
    if is_method(x, name):  # (a bound method's sensitivity is its object's)
        return d
    if name == "T":
        return d.T
    if name in ("real",):
        return d
    if name in ("shape", "ndim", "size", "dtype", "imag"):
        return ZERO
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return tuple_sens(d, list(x._fields).index(name), x)
    return {name: d}


def sens_getattr(dd: Any, x: Any, name: str) -> Any:
    """The adjoint of `getattr_sens` in its first argument: pick `name` from `dd`."""
    if dd is ZERO:
        return ZERO
    if is_method(x, name):
        return dd
    if name == "T":
        return dd.T
    if name == "real":
        return dd
    if name in ("shape", "ndim", "size", "dtype", "imag"):
        return ZERO
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return dd[list(x._fields).index(name)]
    return dd.get(name, ZERO) if isinstance(dd, dict) else ZERO


def field_sens(d: Any, cls: Any, n: int) -> tuple:
    """Per-field sensitivities of a dataclass/NamedTuple constructed from its first n
    fields (the others defaulted), in field order."""
    import dataclasses

    if d is ZERO:
        return (ZERO,) * n
    if isinstance(d, dict):
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        return tuple(d.get(k, ZERO) for k in names[:n])
    return tuple(d)[:n]


def repeat_sens(d: Any, seq: Any) -> Any:
    """The sensitivity of the sequence `seq` in `seq * k` (repeated k times): the sum of
    the k chunks of `d`, the sensitivity of the result."""
    n = len(seq)
    if d is ZERO or n == 0:
        return ZERO
    total: Any = ZERO
    for start in range(0, len(d), n):
        total = gadd(total, tuple(d[start:start + n]))
    return list(total) if isinstance(seq, list) and total is not ZERO else total


def construct_value(cls: Any, fields: tuple) -> Any:
    """`cls(*fields)`: the value of a constructed dataclass or NamedTuple (a primitive,
    so that derivative code can build one from a class known only at run time)."""
    return cls(*fields)


def struct_sens(ds: tuple, cls: Any) -> Any:
    """The adjoint of `field_sens`: the sensitivities of the first len(ds) fields back
    into one structure (the other fields' are zero)."""
    import dataclasses

    if dataclasses.is_dataclass(cls):
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        return dict(zip(names[:len(ds)], ds, strict=True))
    return tuple(ds) + (ZERO,) * (len(getattr(cls, "_fields", ds)) - len(ds))


def check_scalar_output(out: Any) -> Any:
    import numpy as np

    from .errors import GradError

    if isinstance(out, (float, int)) and not isinstance(out, bool):
        return out
    if isinstance(out, (np.ndarray, np.generic)) and np.ndim(out) == 0 and \
            np.result_type(out).kind in "fc":
        return out
    shape = getattr(out, "shape", None)
    kind = f"an array of shape {shape}" if shape is not None else type(out).__name__
    raise GradError(f"grad requires the function to return a scalar, but it returned {kind}; "
                    "use tl.vjp for non-scalar outputs, or has_aux=True to return extra values")


def check_aux_output(out: Any) -> Any:
    from .errors import GradError

    if isinstance(out, (tuple, list)) and len(out) == 2:
        return out
    kind = f"a {type(out).__name__} of length {len(out)}" if isinstance(out, (tuple, list)) \
        else type(out).__name__
    raise GradError(f"has_aux=True requires the function to return a pair (value, aux), but "
                    f"it returned {kind}; return `value, aux`, or leave has_aux out")


def ones_like_output(out: Any) -> Any:
    import numpy as np

    if isinstance(out, (np.ndarray, np.generic)):
        return np.ones((), dtype=np.result_type(out))[()] if np.ndim(out) == 0 else \
            np.ones_like(out)
    return 1.0


def polygamma(n: int, x: float) -> float:
    """The n-th derivative of the digamma function ψ (n = 0 is ψ itself), for x > 0:
    shift x up by the recurrence, then the asymptotic series (error below 1e-12)."""
    import math

    n = int(n)
    sign = -1.0 if n % 2 == 0 else 1.0  # (-1)**(n+1)
    shift = 0.0
    while x < 12.0:
        shift += sign * math.factorial(n) / x ** (n + 1)
        x += 1.0
    bernoulli = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6)
    if n == 0:
        series = math.log(x) - 0.5 / x
        for k, b in enumerate(bernoulli, start=1):
            series -= b / (2 * k * x ** (2 * k))
        return series + shift
    series = math.factorial(n - 1) / x ** n + math.factorial(n) / (2 * x ** (n + 1))
    for k, b in enumerate(bernoulli, start=1):
        series += b * math.factorial(2 * k + n - 1) / (math.factorial(2 * k) * x ** (2 * k + n))
    return sign * series + shift


def sens_index(dd: Any, index: Any) -> Any:
    """`dd[index]` for a sensitivity, where a missing entry or ZERO means zero."""
    if dd is ZERO:
        return ZERO
    if isinstance(dd, dict):
        return dd.get(index, ZERO)
    return dd[index]


def einsum_specs(subscripts: str, operands: tuple) -> tuple:
    """For each operand k of `einsum(subscripts, *operands)`:
    the einsum spec that computes its gradient from (d, the other operands), the
    axes that spec cannot produce (labels only operand k has), which the gradient is
    broadcast along, the ellipsis axes to sum, and, where operand k repeats a label,
    how to put its gradient on the diagonal it reads (`_einsum_diagonal`; else None).
    An ellipsis is written out as letters the spec does not use."""
    import numpy as np

    n = len(operands)
    spec = subscripts.replace(" ", "")
    if "->" in spec:
        inputs, out = spec.split("->")
    else:
        inputs, out = spec, None
    parts = inputs.split(",")
    if len(parts) != n:
        raise ValueError(f"einsum spec {subscripts!r} names {len(parts)} operands, got {n}")
    if "." in spec:
        free = [c for c in _EINSUM_LETTERS if c not in spec]
        widths = [np.ndim(operands[k]) - (len(p) - 3) if "..." in p else 0
                  for k, p in enumerate(parts)]
        width = max(widths)
        dots = "".join(free[:width])
        parts = [p.replace("...", dots[width - w:]) for p, w in zip(parts, widths, strict=True)]
        if out is None:
            letters = "".join(parts).replace(",", "")
            out = dots + "".join(sorted(c for c in set(letters) if letters.count(c) == 1
                                        and c not in dots))
        else:
            out = out.replace("...", dots)
    elif out is None:
        letters = inputs.replace(",", "")
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    result = []
    for k, part in enumerate(parts):
        embed = None
        if len(set(part)) != len(part):
            embed = _einsum_diagonal(part, np.shape(operands[k]), "".join(parts) + out)
            part = "".join(c for i, c in enumerate(part) if part.index(c) == i)
        others = parts[:k] + parts[k + 1:]
        available = set(out).union(*others) if others else set(out)
        produced = "".join(c for c in part if c in available)
        missing = tuple(i for i, c in enumerate(part) if c not in available)
        summed: tuple = ()
        back = ",".join([out] + others) + "->" + produced
        if "." in spec and any(c in dots for c in produced):
            # The ellipsis's letters as an ellipsis again, so that the spec broadcasts
            # them as the original did, and its own derivative sums them back (NumPy
            # wants an ellipsis in the output where the inputs have one). An operand
            # with fewer of them gets them all, then sums the ones it lacks.
            mine = "".join(c for c in produced if c in dots)
            extra = dots[:width - len(mine)]
            summed = tuple(range(produced.index(mine), produced.index(mine) + len(extra)))
            back = ",".join(_ellipsis_again(t, dots) for t in back.split("->")[0].split(","))
            back = back + "->" + produced.replace(mine, "...")
        result.append((back, missing, summed, embed))
    return tuple(result)


def _einsum_diagonal(part: str, shape: tuple, used: str) -> tuple:
    """For an operand whose labels `part` repeat (it is read along a diagonal): the
    einsum spec that puts a gradient over its unique labels on that diagonal, as a
    product with one identity matrix per repetition, the identities' sizes, and the
    shape of the gradient over the unique labels. `np.einsum('ii->i', a)`'s operand
    gets 'i,ij->ij' with eye(n): d[i] at [i, i]."""
    fresh = [c for c in _EINSUM_LETTERS if c not in used]
    unique, result, eyes, sizes = "", "", [], []
    for i, c in enumerate(part):
        if part.index(c) == i:
            unique += c
            result += c
        else:
            f = fresh.pop(0)
            result += f
            eyes.append(c + f)
            sizes.append(shape[i])
    spec = ",".join([unique] + eyes) + "->" + result
    return spec, tuple(sizes), tuple(shape[part.index(c)] for c in unique)


def _ellipsis_again(term: str, dots: str) -> str:
    """`term` with its letters of `dots` (a suffix of them, in order) written `...`."""
    mine = "".join(c for c in term if c in dots)
    if not mine:
        return term
    return term.replace(mine, "...")


# Labels in the order NumPy sorts them (an implicit output lists its labels sorted).
_EINSUM_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def einsum_sublist_spec(first: Any, rest: tuple) -> str:
    """The subscripts string of `np.einsum(first, sublist0, op1, sublist1, ...,
    [output])` (the sublist form: `rest` is everything after the first operand)."""
    n = (len(rest) + 1) // 2
    sublists = [rest[0]] + [rest[2 * k] for k in range(1, n)]
    out = rest[2 * n - 1] if len(rest) == 2 * n else None

    def letters(sub: Any) -> str:
        return "".join("..." if s is Ellipsis else _EINSUM_LETTERS[s] for s in sub)

    spec = ",".join(letters(s) for s in sublists)
    return spec if out is None else spec + "->" + letters(out)


def einsum_matmul_plan(subscripts: Any, a: Any, b: Any) -> tuple | None:
    """How to compute `np.einsum(subscripts, a, b)` with one `np.matmul` (BLAS) when
    that is worth it: the transposes and reshapes of `a` and `b` into stacks of
    matrices, the shape of the product before the output's transpose, and that
    transpose. None where einsum itself should run: a spec other than an explicit
    two-operand one, an ellipsis, a label repeated in an operand or summed from only
    one operand, sizes that differ, integer or object arrays, no label contracted, no
    label free on either side (a batched dot product, which einsum does faster), or
    under about 10^5 multiplications (einsum's own loop is quicker than the reshapes)."""
    if not isinstance(subscripts, str) or "->" not in subscripts or "." in subscripts:
        return None
    kind_a = getattr(getattr(a, "dtype", None), "kind", None)
    kind_b = getattr(getattr(b, "dtype", None), "kind", None)
    if kind_a not in ("f", "c") or kind_b not in ("f", "c"):
        return None
    return _einsum_matmul_plan(subscripts, a.shape, b.shape)


_MATMUL_PLANS: dict = {}


def _einsum_matmul_plan(subscripts: str, shape_a: tuple, shape_b: tuple) -> tuple | None:
    key = (subscripts, shape_a, shape_b)
    if key in _MATMUL_PLANS:
        found: tuple | None = _MATMUL_PLANS[key]
        return found
    plan = _find_matmul_plan(subscripts, shape_a, shape_b)
    if len(_MATMUL_PLANS) > 4096:
        _MATMUL_PLANS.clear()
    _MATMUL_PLANS[key] = plan
    return plan


def _find_matmul_plan(subscripts: str, shape_a: tuple, shape_b: tuple) -> tuple | None:
    import math

    inputs, out = subscripts.replace(" ", "").split("->")
    parts = inputs.split(",")
    if len(parts) != 2:
        return None
    sa, sb = parts
    if len(sa) != len(shape_a) or len(sb) != len(shape_b) or len(set(sa)) != len(sa) \
            or len(set(sb)) != len(sb) or len(set(out)) != len(out):
        return None
    size: dict = {}
    for sub, shape in ((sa, shape_a), (sb, shape_b)):
        for c, n in zip(sub, shape, strict=True):
            if size.setdefault(c, n) != n:
                return None
    if any(c not in size for c in out) or any(c not in out and (c not in sa or c not in sb)
                                              for c in size):
        return None
    batch = [c for c in out if c in sa and c in sb]
    free_a = [c for c in out if c in sa and c not in sb]
    free_b = [c for c in out if c in sb and c not in sa]
    summed = [c for c in sa if c not in out]
    if not summed or not (free_a or free_b) or math.prod(size.values()) < 100_000:
        return None
    batch_shape = tuple(size[c] for c in batch)
    m = math.prod(size[c] for c in free_a)
    k = math.prod(size[c] for c in summed)
    n = math.prod(size[c] for c in free_b)
    perm_a = tuple(sa.index(c) for c in batch + free_a + summed)
    perm_b = tuple(sb.index(c) for c in batch + summed + free_b)
    shape_r = batch_shape + tuple(size[c] for c in free_a + free_b)
    perm_r = tuple((batch + free_a + free_b).index(c) for c in out)
    return (perm_a, batch_shape + (m, k), perm_b, batch_shape + (k, n), shape_r, perm_r)


def tensordot_subscripts(a_ndim: int, b_ndim: int, axes: Any) -> str:
    """The einsum spec equivalent to `np.tensordot(a, b, axes)`."""
    if isinstance(axes, int):
        a_axes = list(range(a_ndim - axes, a_ndim))
        b_axes = list(range(axes))
    else:
        a_axes, b_axes = axes
        a_axes = [a_axes] if isinstance(a_axes, int) else list(a_axes)
        b_axes = [b_axes] if isinstance(b_axes, int) else list(b_axes)
    a_axes = [x % a_ndim for x in a_axes]
    b_axes = [x % b_ndim for x in b_axes]
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    a_sub = [next(letters) for _ in range(a_ndim)]
    b_sub = [next(letters) for _ in range(b_ndim)]
    for i, j in zip(a_axes, b_axes, strict=True):
        b_sub[j] = a_sub[i]
    out = [a_sub[i] for i in range(a_ndim) if i not in a_axes] + \
        [b_sub[j] for j in range(b_ndim) if j not in b_axes]
    return "".join(a_sub) + "," + "".join(b_sub) + "->" + "".join(out)


def split_indices(arrays: Any, axis: Any) -> list:
    """Where to split the gradient of `np.concatenate(arrays, axis)`."""
    import numpy as np

    sizes = [np.size(a) if axis is None else np.shape(a)[axis] for a in arrays]
    return list(np.cumsum(sizes)[:-1])


def concat_sens(d: Any, arrays: Any, axis: Any) -> Any:
    """The sensitivities of `arrays` (a tuple) given that of `np.concatenate(arrays, axis)`."""
    import numpy as np

    if d is ZERO:
        return ZERO
    pieces = np.split(np.ravel(d) if axis is None else d, split_indices(arrays, axis),
                      0 if axis is None else axis)
    return tuple(reshape_like(p, a) for p, a in zip(pieces, arrays, strict=True))


def take_sens(d: Any, a: Any, indices: Any, axis: Any) -> Any:
    """The sensitivity of `a` given that of `np.take(a, indices, axis)`."""
    import numpy as np

    if d is ZERO:
        return ZERO
    out = np.zeros(np.size(a) if axis is None else np.shape(a),
                   dtype=np.result_type(a, d, np.float64))
    if axis is None:
        np.add.at(out, indices, d)
        return out.reshape(np.shape(a))
    axis = axis % np.ndim(a)
    moved = np.moveaxis(out, axis, 0)
    # The result's axes [axis, axis + indices.ndim) are the index axes: move them first.
    k = np.ndim(indices)
    np.add.at(moved, indices, np.moveaxis(np.asarray(d), list(range(axis, axis + k)),
                                          list(range(k))))
    return out


def diag_sens(d: Any, v: Any, k: int) -> Any:
    """The sensitivity of the matrix `v` given that of `np.diag(v, k)`."""
    import numpy as np

    if d is ZERO:
        return ZERO
    out = np.zeros(np.shape(v), dtype=np.result_type(v, d, np.float64))
    rows, cols = np.shape(v)
    i = np.arange(len(d))
    out[i + max(-k, 0), i + max(k, 0)] = d
    return out


# --- helpers of the reverse rules of `tapeless.primitives.rules_arrays` ---------------------


def take_along_axis_sens(d: Any, arr: Any, indices: Any, axis: Any) -> Any:
    """The sensitivity of `arr` given that of `np.take_along_axis(arr, indices, axis)`
    (repeated indices add up)."""
    import numpy as np

    if d is ZERO:
        return ZERO
    out = np.zeros(np.shape(arr), dtype=np.result_type(arr, d, np.float64))
    if axis is None:
        flat = out.reshape(-1)  # (a view: out is new and contiguous)
        np.add.at(flat, indices, d)
        return out
    ndim = out.ndim
    axis = axis % ndim
    index = tuple(indices if i == axis else
                  np.arange(out.shape[i]).reshape((-1,) + (1,) * (ndim - 1 - i))
                  for i in range(ndim))
    np.add.at(out, index, d)
    return out


# --- trees (`tapeless.tree`) --------------------------------------------------------------
# A tree is a tuple, a list, a dict (its keys sorted, as JAX orders them), a NamedTuple or
# a dataclass of trees; None is a tree without leaves; anything else is a leaf.


def _children(x: Any) -> list[Any] | None:
    """A container's subtrees in leaf order, or None for a leaf."""
    if isinstance(x, (tuple, list)):
        return list(x)
    if isinstance(x, dict):
        return [x[k] for k in sorted(x)]
    if is_struct(x):
        return [getattr(x, f) for f in struct_fields(x)]
    return None


def tree_leaves(tree: Any) -> list:
    """The leaves of `tree`, in order."""
    if tree is None:
        return []
    children = _children(tree)
    if children is None:
        return [tree]
    return [leaf for c in children for leaf in tree_leaves(c)]


def same_structure(a: Any, b: Any) -> bool:
    """Whether two trees have one structure (containers of the same types and keys, the
    same lengths, leaves in the same places); the leaves themselves may differ."""
    if a is None or b is None:
        return a is b
    ca, cb = _children(a), _children(b)
    if ca is None or cb is None:
        return ca is None and cb is None
    if type(a) is not type(b) or len(ca) != len(cb) or \
            (isinstance(a, dict) and sorted(a) != sorted(b)):
        return False
    return all(same_structure(x, y) for x, y in zip(ca, cb, strict=True))


def _rebuild(like: Any, children: list) -> Any:
    if isinstance(like, dict):
        by_key = dict(zip(sorted(like), children, strict=True))
        return {k: by_key[k] for k in like}
    if is_struct(like):
        return replace_fields(like, tuple(struct_fields(like)), tuple(children))
    if isinstance(like, tuple) and hasattr(like, "_fields"):
        return type(like)(*children)
    return type(like)(children)


def tree_unflatten(like: Any, leaves: Any) -> Any:
    """A tree of `like`'s structure (a tree or a `tapeless.tree.TreeDef`) with `leaves`."""
    like = getattr(like, "skeleton", like)
    it = iter(leaves)
    out = _unflatten(like, it)
    if next(it, _END) is not _END:
        raise ValueError("tree_unflatten: more leaves than the structure holds")
    return out


_END = object()


def _unflatten(like: Any, it: Any) -> Any:
    if like is None:
        return None
    children = _children(like)
    if children is None:
        leaf = next(it, _END)
        if leaf is _END:
            raise ValueError("tree_unflatten: fewer leaves than the structure holds")
        return leaf
    return _rebuild(like, [_unflatten(c, it) for c in children])


def tree_leaves_sens(like: Any, d: Any) -> list:
    """The sensitivity of a tree like `like`, as the list of its leaves' (ZERO where `d`
    holds none): the adjoint of `tree_unflatten_sens`."""
    return list(_leaf_sens(like, d))


def _leaf_sens(like: Any, d: Any) -> Any:
    if like is None:
        return
    children = _children(like)
    if children is None:
        yield d
        return
    if d is ZERO:
        parts: list = [ZERO] * len(children)
    elif isinstance(like, dict):
        parts = [d.get(k, ZERO) for k in sorted(like)]
    elif is_struct(like):
        parts = [d.get(f, ZERO) if isinstance(d, dict) else ZERO for f in struct_fields(like)]
    else:
        parts = list(d)
    for c, dc in zip(children, parts, strict=True):
        yield from _leaf_sens(c, dc)


def tree_unflatten_sens(like: Any, ds: Any) -> Any:
    """The sensitivity of a tree like `like` from its leaves' (`ds`, a list or ZERO), in
    the form sensitivities take (a dataclass's is a dict of its fields)."""
    if ds is ZERO:
        return ZERO
    it = iter(ds)
    return _sens_of_leaves(like, it)


def _sens_of_leaves(like: Any, it: Any) -> Any:
    if like is None:
        return ZERO
    children = _children(like)
    if children is None:
        return next(it)
    parts = [_sens_of_leaves(c, it) for c in children]
    if isinstance(like, dict):
        return dict(zip(sorted(like), parts, strict=True))
    if is_struct(like):
        return dict(zip(struct_fields(like), parts, strict=True))
    return parts if isinstance(like, list) else tuple(parts)


# --- random numbers -------------------------------------------------------------------
# The methods of a NumPy random generator (`numpy.random.Generator`, or the legacy
# `numpy.random.RandomState`) as compiled code calls them (`primitives/random_ops.py`):
# each checks its object, then makes the call the user wrote, so the compiled program
# draws the numbers CPython draws, in the same order. A parameter that only a Generator
# has is passed only when it is not its default, so a RandomState takes the same call.


_GENERATORS: tuple[type, ...] = ()  # numpy.random.Generator and RandomState


def random_method(rng: Any, method: str) -> Any:
    """`rng.method`, where `rng` is a NumPy random generator; else a TypeError (the
    front end compiles `x.normal(...)` as a draw whatever x is)."""
    global _GENERATORS
    if type(rng) in _GENERATORS:
        return getattr(rng, method)
    if not _GENERATORS:
        import numpy as np

        _GENERATORS = (np.random.Generator, np.random.RandomState)
    if isinstance(rng, _GENERATORS):
        return getattr(rng, method)
    raise TypeError(f".{method}(...) was compiled as the method of a NumPy random "
                    f"generator (numpy.random.Generator.{method}), but it is called on "
                    f"a {type(rng).__qualname__}: give your class's method another name")


def rng_normal(rng: Any, loc: Any = 0.0, scale: Any = 1.0, size: Any = None) -> Any:
    return random_method(rng, "normal")(loc, scale, size)


def rng_uniform(rng: Any, low: Any = 0.0, high: Any = 1.0, size: Any = None) -> Any:
    return random_method(rng, "uniform")(low, high, size)


def rng_standard_normal(rng: Any, size: Any = None, dtype: Any = None) -> Any:
    draw = random_method(rng, "standard_normal")
    return draw(size) if dtype is None else draw(size, dtype)


def rng_random(rng: Any, size: Any = None, dtype: Any = None) -> Any:
    draw = random_method(rng, "random")
    return draw(size) if dtype is None else draw(size, dtype)


def rng_integers(rng: Any, low: Any, high: Any = None, size: Any = None, dtype: Any = None,
                 endpoint: Any = False) -> Any:
    options: dict[str, Any] = {} if dtype is None else {"dtype": dtype}
    if endpoint is not False:
        options["endpoint"] = endpoint
    return random_method(rng, "integers")(low, high, size, **options)


def rng_choice(rng: Any, a: Any, size: Any = None, replace: Any = True, p: Any = None,
               axis: Any = 0, shuffle: Any = True) -> Any:
    options: dict[str, Any] = {}
    if not (type(axis) is int and axis == 0):
        options["axis"] = axis
    if shuffle is not True:
        options["shuffle"] = shuffle
    return random_method(rng, "choice")(a, size, replace, p, **options)


def rng_permutation(rng: Any, x: Any, axis: Any = 0) -> Any:
    draw = random_method(rng, "permutation")
    return draw(x) if type(axis) is int and axis == 0 else draw(x, axis)


def rng_binomial(rng: Any, n: Any, p: Any, size: Any = None) -> Any:
    return random_method(rng, "binomial")(n, p, size)


def rng_exponential(rng: Any, scale: Any = 1.0, size: Any = None) -> Any:
    return random_method(rng, "exponential")(scale, size)


def rng_poisson(rng: Any, lam: Any = 1.0, size: Any = None) -> Any:
    return random_method(rng, "poisson")(lam, size)


# (The legacy RandomState's own methods.)
def rng_randn(rng: Any, *shape: Any) -> Any:
    return random_method(rng, "randn")(*shape)


def rng_rand(rng: Any, *shape: Any) -> Any:
    return random_method(rng, "rand")(*shape)


def rng_randint(rng: Any, low: Any, high: Any = None, size: Any = None,
                dtype: Any = None) -> Any:
    draw = random_method(rng, "randint")
    return draw(low, high, size) if dtype is None else draw(low, high, size, dtype)


def rng_random_sample(rng: Any, size: Any = None) -> Any:
    return random_method(rng, "random_sample")(size)


def rng_seed(rng: Any, seed: Any = None) -> None:
    random_method(rng, "seed")(seed)


# Reparameterized draws, for derivative code: the sample, as NumPy draws it, and the
# standard variates it was made from (`loc + scale * z`, `low + (high - low) * u`,
# `scale * e`) where they cannot be recovered from the sample without losing precision
# (a scale of 0, or one tiny beside the location): then they are drawn again from a copy
# of the generator's state taken before the draw (the same numbers); else None, and
# `standard_variates` recovers them from the sample where derivative code needs them.
# `rng` None is NumPy's global generator (the legacy `np.random.*` functions).
_RECOVERABLE = 2.0 ** 20  # recovering z from the sample loses log2(|loc| / |scale|) bits


def _generator(rng: Any, method: str) -> Any:
    if rng is None:
        import numpy as np

        return np.random.mtrand._rand
    random_method(rng, method)  # (checks it is a generator)
    return rng


def _twin(rng: Any, recoverable: bool) -> Any:
    """A copy of the generator, where the standard variates cannot be recovered."""
    import copy

    return None if recoverable else copy.deepcopy(rng)


def _recoverable(bound: Any, scale: Any) -> bool:
    """Whether (sample - offset) / scale recovers the standard variates to within
    2^-20 (relative to 1) for samples of magnitude up to `bound`."""
    if type(bound) is float and type(scale) is float:  # (the common case: numbers)
        return abs(bound) < _RECOVERABLE * abs(scale)
    import numpy as np

    return bool(np.all(np.abs(bound) < _RECOVERABLE * np.abs(scale)))


def _drawn(sample: Any, twin: Any, method: str) -> tuple:
    import numpy as np

    if twin is None:
        return sample, None
    draw = getattr(twin, method)
    return sample, draw(np.shape(sample)) if np.ndim(sample) else draw()


def normal_and_standard(rng: Any, loc: Any, scale: Any, size: Any) -> tuple:
    """rng.normal(loc, scale, size) and the standard normal variates z (or None)."""

    gen = _generator(rng, "normal")
    twin = _twin(gen, _recoverable(float(loc) if type(loc) is int else loc,
                                   float(scale) if type(scale) is int else scale))
    return _drawn(gen.normal(loc, scale, size), twin, "standard_normal")


def uniform_and_unit(rng: Any, low: Any, high: Any, size: Any) -> tuple:
    """rng.uniform(low, high, size) and the uniform variates on [0, 1) (or None)."""
    import numpy as np

    gen = _generator(rng, "uniform")
    if type(low) in (float, int) and type(high) in (float, int):
        bound, span = float(max(abs(low), abs(high))), float(high - low)
    else:
        bound, span = np.maximum(np.abs(low), np.abs(high)), np.subtract(high, low)
    twin = _twin(gen, _recoverable(bound, span))
    return _drawn(gen.uniform(low, high, size), twin, "random")


def exponential_and_standard(rng: Any, scale: Any, size: Any) -> tuple:
    """rng.exponential(scale, size) and the standard exponential variates (or None)."""
    import numpy as np

    gen = _generator(rng, "exponential")
    twin = _twin(gen, scale != 0 if type(scale) in (float, int) else
                 bool(np.all(np.not_equal(scale, 0))))
    return _drawn(gen.exponential(scale, size), twin, "standard_exponential")


def standard_variates(drawn: tuple, offset: Any, scale: Any) -> Any:
    """The standard variates of a reparameterized draw (`normal_and_standard`, ...):
    those drawn again, else recovered from the sample, (sample - offset) / scale."""
    sample, standard = drawn
    return standard if standard is not None else (sample - offset) / scale
# --- in-place updates, functionalized ------------------------------------------------
# The front end compiles `x[index] = v` to `x = index_update(x, index, v)` and
# `np.add.at(x, index, v)` to `x = index_add(x, index, v)`, where the program owns x
# (see `tapeless.frontend.mutation`): no other name, container or closure sees the
# object, so a new value is indistinguishable from the object changed in place.


def index_update(x: Any, index: Any, value: Any) -> Any:
    """`x[index] = value` as a value: a copy of `x` with the item(s) replaced."""
    import numpy as np

    out: Any
    if isinstance(x, np.ndarray):
        out = x.copy(order="K")
    elif isinstance(x, (list, dict)):
        out = x.copy()
    else:
        raise TypeError(f"'{type(x).__name__}' object does not support item assignment")
    out[index] = value
    return out


def index_add(x: Any, index: Any, value: Any) -> Any:
    """`np.add.at(x, index, value)` as a value: a copy of `x` where each position the
    index names (as often as it names it) has `value` added."""
    import numpy as np

    out = x.copy(order="K") if isinstance(x, np.ndarray) else x  # (np.add.at raises)
    np.add.at(out, index, value)
    return out


def _integer_arrays(index: Any) -> bool:
    """Whether `index` holds an integer array (or a list), which may name a position
    more than once."""
    import numpy as np

    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, list) or (isinstance(p, np.ndarray) and p.dtype.kind != "b")
               for p in parts)


def _written(shape: tuple, index: Any) -> Any:
    """Which of the positions `x[index]` gathers an assignment `x[index] = v` writes
    last (a position named twice keeps one value), as a boolean array of the gathered
    shape: NumPy's own choice, found by assigning the positions' numbers."""
    import numpy as np

    probe = np.zeros(shape, dtype=np.intp)
    gathered = probe[index].shape
    order = np.arange(1, int(np.prod(gathered)) + 1, dtype=np.intp).reshape(gathered)
    probe[index] = order
    return probe[index] == order


def _to_value_shape(g: Any, value: Any) -> Any:
    """`g`, the gathered sensitivity, summed to the shape of the `value` assigned (which
    NumPy broadcast, maybe after dropping leading axes of length 1)."""
    import numpy as np

    extra = np.ndim(value) - np.ndim(g)
    if extra > 0:
        g = np.reshape(g, (1,) * extra + np.shape(g))
    out = unbroadcast(g, value)
    if isinstance(value, (list, tuple)):
        items = np.asarray(out).tolist()
        return items if isinstance(value, list) else tuple(items)
    return out


def update_rest_sens(d: Any, index: Any) -> Any:
    """The sensitivity of `x` in `index_update(x, index, v)` given the result's: `d`
    with the positions assigned zeroed (linear in d, and its own adjoint)."""
    import numpy as np

    if d is ZERO:
        return ZERO
    if isinstance(d, dict):
        return {k: v for k, v in d.items() if k != index}
    if isinstance(d, (list, tuple)):
        items = list(d)
        if isinstance(index, slice):
            for j in range(*index.indices(len(items))):
                items[j] = ZERO
        else:
            items[index] = ZERO
        return items if isinstance(d, list) else tuple(items)
    out = np.array(d)
    if out.dtype.kind not in "fc":
        out = out.astype(np.float64)
    out[index] = 0
    return out


def update_value_sens(d: Any, index: Any, value: Any, add: bool) -> Any:
    """The sensitivity of `value` in `index_update(x, index, value)` (`add` False) or
    `index_add(x, index, value)` (`add` True) given the result's, `d`: the gathered
    `d[index]` (for an assignment, only where the value was written last), summed to the
    value's shape. Linear in d."""
    import numpy as np

    if d is ZERO:
        return ZERO
    if isinstance(d, (list, tuple, dict)):
        return sens_index(d, index)
    g = np.asarray(d)[index]
    if not add and _integer_arrays(index):
        g = np.where(_written(np.shape(d), index), g, 0.0)
    return _to_value_shape(g, value)


def update_value_scatter(dd: Any, like: Any, index: Any, value: Any, add: bool) -> Any:
    """The adjoint of `update_value_sens` in its first argument: the value's sensitivity
    `dd` broadcast to the positions `like[index]` names, in an array shaped like `like`
    (added where a position is named twice and `add`; else where it was written last)."""
    import numpy as np

    if dd is ZERO:
        return ZERO
    if isinstance(like, (list, tuple, dict)):
        return getitem_sens(dd, like, index)
    shape = np.shape(like)
    out = np.zeros(shape, dtype=np.result_type(like, dd, np.float64))
    gathered = out[index].shape
    g = np.broadcast_to(np.reshape(dd, np.shape(dd)[max(np.ndim(dd) - len(gathered), 0):]),
                        gathered)
    if add and _integer_arrays(index):
        np.add.at(out, index, g)
    else:
        if _integer_arrays(index):
            g = np.where(_written(shape, index), g, 0.0)
        out[index] = g
    return out


def immutable_item(container: Any, item: Any) -> Any:
    """`item`, `container[i]`, which `container[i] op= v` is about to replace: where the
    container is a list or a dict and the item an array or a list, CPython would change
    the item in place (`item.__iadd__`), which other names may also see; that raises
    instead of giving a different result."""
    import numpy as np

    if isinstance(container, (list, dict)) and isinstance(item, (np.ndarray, list)):
        raise TypeError(
            f"`x[i] op= v` on a list or dict whose item is a {type(item).__name__}: CPython "
            "changes that item in place (other names may refer to it), tapeless would not; "
            "write `x[i] = x[i] + v` (a new item) instead")
    return item


def list_append(lst: Any, item: Any) -> Any:
    """`lst.append(item)` as a value: a new list."""
    if not isinstance(lst, list):
        raise AttributeError(f"'{type(lst).__name__}' object has no attribute 'append'")
    return [*lst, item]


def list_extend(lst: Any, items: Any) -> Any:
    """`lst.extend(items)` as a value: a new list."""
    if not isinstance(lst, list):
        raise AttributeError(f"'{type(lst).__name__}' object has no attribute 'extend'")
    return [*lst, *items]


# --- `f(**kwargs)` with keys known at run time only -------------------------------------


@dataclasses.dataclass(frozen=True)
class BatchedCode:
    """A function of batched code (`tapeless.ad.batch`'s F: called `(mask, *batched
    arguments)`) held in a batched value, as in a tuple saved on a derivative loop's
    stack: the same function for every element, so a call runs it once on the whole
    batch (`tapeless.primitives.batch_rules.call_each`). (A dataclass: compiled code
    makes it.)"""

    fn: Any

    def __call__(self, *args: Any) -> Any:
        raise TypeError("vmap: a function of batched code called for one element; call "
                        "it directly in the mapped function")


class _NoDefault:
    """The default of a parameter that has none (`kwarg_or`)."""

    def __repr__(self) -> str:
        return "NO_DEFAULT"

    def __reduce__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT = _NoDefault()


def kwarg_or(kwargs: dict, name: str, default: Any, fname: str) -> Any:
    """The argument `name` from the dict spread into a call (`f(**kwargs)`), else the
    parameter's default; a TypeError, as Python's, where it has none."""
    if name in kwargs:
        return kwargs[name]
    if default is NO_DEFAULT:
        raise TypeError(f"{fname}() missing 1 required argument: '{name}'")
    return default


def dict_without(d: dict, names: tuple) -> dict:
    """The items of `d` whose keys are not in `names` (what `**rest` receives)."""
    return {k: v for k, v in d.items() if k not in names}


def check_kwargs(kwargs: Any, bound: tuple, accepted: tuple, rest: bool, fname: str) -> None:
    """Python's errors for the dict spread into a call: a key that names a parameter
    already given, or one the function does not accept (unless it has `**rest`)."""
    if not isinstance(kwargs, dict):
        raise TypeError(f"{fname}() argument after ** must be a mapping, not "
                        f"{type(kwargs).__name__}")
    for key in kwargs:
        if key in bound:
            raise TypeError(f"{fname}() got multiple values for argument '{key}'")
        if not rest and key not in accepted:
            raise TypeError(f"{fname}() got an unexpected keyword argument '{key}'")


# The optimizer's forms of the updates where nothing else can see the array
# (`tapeless.opt.updates`): they assign into it.


def index_update_inplace(x: Any, index: Any, value: Any) -> Any:
    import numpy as np

    if isinstance(x, np.ndarray) and not x.flags.writeable:
        return index_update(x, index, value)
    if not isinstance(x, (np.ndarray, list, dict)):
        raise TypeError(f"'{type(x).__name__}' object does not support item assignment")
    x[index] = value
    return x


def index_add_inplace(x: Any, index: Any, value: Any) -> Any:
    import numpy as np

    if isinstance(x, np.ndarray) and not x.flags.writeable:
        return index_add(x, index, value)
    np.add.at(x, index, value)
    return x


def update_rest_inplace(d: Any, index: Any) -> Any:
    import numpy as np

    if isinstance(d, np.ndarray) and d.dtype.kind in "fc" and d.flags.writeable:
        d[index] = 0
        return d
    return update_rest_sens(d, index)


# --- Checkpointed loops (`tapeless.opt.checkpoint`) -------------------------------------
# A gradient's forward `for` loop pushes, each iteration, the values its backward loop
# needs. Where those would take more than a budget of memory, the forward loop keeps
# only its starting state (`LoopTape`), and the backward loop recomputes them segment by
# segment, bisecting: the forward pass runs again from a snapshot to the middle of the
# iterations left, the second half is reversed first, then the first. Memory: one
# segment's saved values (within the budget) plus a snapshot per level, log2(n) of them;
# time: the forward body runs about log2(n / segment) more times per iteration.


def saved_bytes(value: Any, depth: int = 0) -> int:
    """About how many bytes `value` (a tuple of saved values) holds."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.nbytes + 112
    if isinstance(value, (tuple, list)) and depth < 8:
        return 56 + 8 * len(value) + sum(saved_bytes(v, depth + 1) for v in value)
    return 32


class LoopTape:
    """What a checkpointed forward loop leaves its backward loop instead of a stack: the
    iterations, the forward body, where the stack is in its state, the state before the
    first iteration, and how many iterations a segment may hold."""

    __slots__ = ("iterations", "body", "slot", "start", "segment")

    def __init__(self, iterations: range, body: Any, slot: int, start: tuple, segment: int):
        self.iterations, self.body, self.slot = iterations, body, slot
        self.start, self.segment = start, segment


def checkpoint_for(start: int, stop: int, step: int, body: Any, slot: int, budget: int,
                   init: tuple) -> tuple:
    """A gradient's forward `for_range(start, stop, step, body, *init)` loop whose state
    `slot` is the stack of saved values: as that loop, where the values all iterations
    save fit in `budget` bytes (measured on the first iteration); otherwise the stack is
    dropped each iteration and the state leaves a `LoopTape` in its place."""
    iterations = range(start, stop, step)
    n = len(iterations)
    if n == 0:
        return tuple(init)
    state = body(iterations[0], *init)
    per_step = saved_bytes(state[slot][0])
    if per_step * n <= budget:
        for i in iterations[1:]:
            state = body(i, *state)
        return tuple(state)
    kept = list(state)
    kept[slot] = None
    for i in iterations[1:]:
        kept = list(body(i, *kept))
        kept[slot] = None
    kept[slot] = LoopTape(iterations, body, slot, tuple(init), max(1, budget // per_step))
    return tuple(kept)


class WhileTape:
    """What a checkpointed forward `while` loop (`checkpoint_while_loop`) leaves its
    backward loop instead of a stack: how many iterations ran, the forward body, where
    the stack is in its state, snapshots of the state before iterations 0, stride,
    2 * stride, ..., and how many iterations a segment may hold."""

    __slots__ = ("count", "body", "slot", "snapshots", "stride", "segment")

    def __init__(self, count: int, body: Any, slot: int, snapshots: list, stride: int,
                 segment: int):
        self.count, self.body, self.slot = count, body, slot
        self.snapshots, self.stride, self.segment = snapshots, stride, segment


# At most this many snapshots of a checkpointed `while` loop's state are kept while it
# runs (fewer where they would take more than half the budget; at least 2): past that,
# every other one is dropped and the stride between them doubles.
WHILE_SNAPSHOTS = 32


def checkpoint_while_loop(cond: Any, body: Any, slot: int, budget: int, init: tuple
                          ) -> tuple:
    """A gradient's forward `while_loop(cond, body, *init)` whose state `slot` is the
    stack of saved values, its trip count unknown until it stops: as that loop while
    the values its iterations saved fit in `budget` bytes (an iteration's measured on
    the first); from the iteration that would pass it on, the stack is dropped each
    iteration and the state is kept every `stride` iterations instead (a snapshot, the
    starting state the first), the stride doubling, every other snapshot dropped, when
    there are more than the limit. The state leaves a `WhileTape` where the stack was."""
    state = tuple(init)
    if not cond(*state):
        return state
    state = body(*state)
    per_step = saved_bytes(state[slot][0])
    segment = max(1, budget // per_step)
    count = 1
    while count < segment:
        if not cond(*state):
            return tuple(state)
        state = body(*state)
        count += 1
    if not cond(*state):
        return tuple(state)
    kept = list(state)
    kept[slot] = None
    snapshots = [tuple(init), tuple(kept)]
    limit = max(2, min(WHILE_SNAPSHOTS, budget // max(1, 2 * saved_bytes(snapshots[0]))))
    stride = segment
    while cond(*kept):
        kept = list(body(*kept))
        kept[slot] = None
        count += 1
        if count % stride == 0:
            snapshots.append(tuple(kept))
            if len(snapshots) > limit:
                snapshots = snapshots[::2]
                stride *= 2
    kept[slot] = WhileTape(count, body, slot, snapshots, stride, segment)
    return tuple(kept)


def checkpoint_while(cond: Any, body: Any, slot: int, init: tuple) -> tuple:
    """The backward `while_loop(cond, body, *init)` of a `checkpoint_for` (or
    `checkpoint_while_loop`) loop, whose state `slot` is the stack it pops: as that loop
    where the forward loop kept its stack; otherwise the saved values are made again, a
    segment at a time (see above; a `while` loop's, from the snapshot before each
    stride of iterations in turn, the last first)."""
    tape = init[slot]
    if type(tape) is LoopTape:
        iterations, fwd_for = tape.iterations, tape.body

        def step(k: int, state: Any) -> Any:
            return fwd_for(iterations[k], *state)

        return _reverse_loop(cond, body, slot, init, step, tape.slot, tape.segment,
                             [(0, len(iterations), tape.start)])
    if type(tape) is WhileTape:
        fwd_while, stride, count = tape.body, tape.stride, tape.count

        def step(k: int, state: Any) -> Any:
            return fwd_while(*state)

        starts = [(j * stride, min((j + 1) * stride, count), snapshot)
                  for j, snapshot in enumerate(tape.snapshots) if j * stride < count]
        return _reverse_loop(cond, body, slot, init, step, tape.slot, tape.segment,
                             starts[::-1])
    state = tuple(init)
    while cond(*state):
        state = body(*state)
    return tuple(state)


def _reverse_loop(cond: Any, body: Any, slot: int, init: tuple, step: Any, fslot: int,
                  segment: int, parts: list) -> tuple:
    """Run the backward loop `body` (its state `init`, the stack at `slot`) over the
    forward iterations `parts` ((lo, hi, the state before iteration lo), in the order
    they are reversed), making each part's saved values again with `step(k, state)`, the
    forward iteration k (its stack at `fslot`), by bisection down to `segment`
    iterations."""
    back = list(init)

    def advance(state: tuple, lo: int, hi: int) -> tuple:
        kept = list(state)
        for k in range(lo, hi):
            kept = list(step(k, kept))
            kept[fslot] = None
        return tuple(kept)

    def reverse(lo: int, hi: int, state: Any) -> None:
        nonlocal back
        if hi - lo <= segment:
            for k in range(lo, hi):
                state = step(k, state)
            back[slot] = state[fslot]
            while cond(*back):
                back = list(body(*back))
            return
        mid = (lo + hi) // 2
        reverse(mid, hi, advance(state, lo, mid))
        reverse(lo, mid, state)

    for lo, hi, start in parts:
        reverse(lo, hi, start)
    back[slot] = None
    return tuple(back)


# --- Checkpointed recursion (`tapeless.opt.checkpoint.checkpoint_recursion`) -------------
# A recursive function's lifted derivative `J_f(args) -> (value, record)` keeps every
# call's record until the backward pass `B_f(record, d)` reads it: memory grows with the
# number of calls. Checkpointed, each recording region (the outermost call, and each
# call the backward pass makes again) keeps the records of its first `limit` calls
# (`limit` = the budget ÷ the bytes of one call's record, measured on the function's
# first gradient that records 16 calls or more; 64 until then); a call past them runs
# `J_f` for its value alone (the records it makes are dropped, its own calls past the
# limit too) and leaves a `RecursionTape` (the function, its arguments, the limit) as
# its record, which the backward pass makes again, in a region of its own, before `B_f`
# reads it (or, made under a limit of 0 where the recursion has a stream function `R_f`,
# `opt.checkpoint.stream_recursion`, streams it: one child's saved values at a time).
# Memory:
# about the recursion's depth times the budget (budget 0: one call's record per level of
# the recursion, the hand-written schedule that makes each minor's value again); time:
# each call runs once more per checkpointed call above it. One counter per process (not
# for gradients running in several threads at once).


class RecursionTape:
    """The record a checkpointed recursive call leaves: its arguments, and `made`, the
    triple (its J function, the limit of records of the region it was made in, its
    stream function R or None, `opt.checkpoint.stream_recursion`), one per region
    (shared by its tapes)."""

    __slots__ = ("args", "made")

    def __init__(self, args: tuple, made: tuple[Any, int, Any]):
        self.args, self.made = args, made


class _Recording:
    """The calls recorded in the current region, the region's limit, and the pair its
    tapes share (`RecursionTape.made`)."""

    __slots__ = ("count", "limit", "made")

    def __init__(self) -> None:
        self.count, self.limit = 0, 0
        self.made: tuple[Any, int, Any] | None = None


_RECORDING = _Recording()
# Bytes of one call's record, per J function: measured on its first gradient that
# records at least CALLS_MEASURED calls, or as many as its region's limit let it (the
# records' bytes over their number: the first call's alone, with its tapes, is not a
# call's typical record; measured on fewer, the size is overstated, which keeps less).
# Weakly keyed: a measurement does not keep a compiled program alive.
_CALL_BYTES: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
CALLS_MEASURED = 16


def _record_bytes(record: Any, args: tuple) -> int:
    """About how many bytes a record holds with the records inside it (as
    `saved_bytes` counts them), not counting the arrays it shares with the arguments."""
    import numpy as np

    total, todo, seen = 0, [record], set()
    while todo:
        v = todo.pop()
        if isinstance(v, np.ndarray):
            total += 8 if any(v is a for a in args) else v.nbytes + 112
        elif isinstance(v, (tuple, list)):
            if id(v) not in seen:
                seen.add(id(v))
                total += 56 + 8 * len(v)
                todo.extend(v)
        elif type(v) is RecursionTape:
            total += 56
            todo.append(v.args)
        else:
            total += 32
    return total


def recursion_enter(fn: Any, budget: int, args: tuple, value: Any = None,
                    stream: Any = None) -> Any:
    """`fn(*args)` (a recursive function's J, called from outside its recursion): a new
    recording region of `budget` bytes. Where that keeps no record and the recursion
    has its value and stream functions (`value(*args)`, J's value alone, and
    `stream(*args, d, acc)`, `opt.checkpoint.stream_recursion`), the value and a tape
    (the backward pass streams every level)."""
    rec = _RECORDING
    count, limit, made = rec.count, rec.limit, rec.made
    per_call = _CALL_BYTES.get(fn)
    rec.count, rec.limit, rec.made = 0, budget // (per_call or 64), None
    try:
        if rec.limit == 0 and stream is not None:
            return value(*args), RecursionTape(args, (fn, 0, stream))
        out = fn(*args)
        if per_call is None and rec.limit > 0 and \
                rec.count + 1 >= min(CALLS_MEASURED, rec.limit + 1):
            _CALL_BYTES[fn] = max(1, _record_bytes(out[1], args) // (rec.count + 1))
        return out
    finally:
        rec.count, rec.limit, rec.made = count, limit, made


def recursion_call(fn: Any, args: tuple, value: Any = None, stream: Any = None) -> Any:
    """`fn(*args)`, a call of a recursive function's J from within its recursion: as it
    is while the region's records are under its limit; past it, the value (`value(*args)`
    where J's value alone is given, else J's first item), and a `RecursionTape` as the
    record (naming `stream`, see `recursion_back`)."""
    rec = _RECORDING
    if rec.count < rec.limit:
        rec.count += 1
        return fn(*args)
    v = fn(*args)[0] if value is None else value(*args)
    made = rec.made
    if made is None or made[0] is not fn or made[1] != rec.limit or made[2] is not stream:
        made = rec.made = (fn, rec.limit, stream)
    return v, RecursionTape(args, made)


def recursion_back(fn: Any, record: Any, d: Any, acc: Any = None) -> Any:
    """`fn(record, d)` (`fn(record, d, acc)` where B adds into an accumulator, never
    None), a call of a recursive function's B: where the record is a `RecursionTape`,
    its call is made again first, in a region of its own; where the tape was made under
    a limit of 0 and names a stream function R, `R(*args, d, acc)` instead, in a region
    of limit 0 (R makes the level's saved values one child at a time, and runs B on
    each)."""
    if type(record) is not RecursionTape:
        return fn(record, d) if acc is None else fn(record, d, acc)
    rec = _RECORDING
    count, limit, made = rec.count, rec.limit, rec.made
    fn_j, rec.limit, stream = record.made
    rec.count, rec.made = 0, record.made
    try:
        if stream is not None and rec.limit == 0 and acc is not None:
            return stream(*record.args, d, acc)
        remade = fn_j(*record.args)[1]
    finally:
        rec.count, rec.limit, rec.made = count, limit, made
    return fn(remade, d) if acc is None else fn(remade, d, acc)
