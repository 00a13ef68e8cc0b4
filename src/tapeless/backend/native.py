"""The native backend: the Python backend's generated module, compiled by Numba.

The optimized program that `pygen` prints for floats, ints, tuples, lists and NumPy
arrays is already the flat loop code Numba types well. This module rewrites the few
constructs whose meaning differs under Numba (`reversed` over a list, `**`, `math`
functions, the runtime helpers that have a native twin), writes the module into a
directory tapeless owns, and compiles every function of it with `numba.njit`.

Nothing here may change a result. Where native code and CPython could disagree it raises
instead (a `math` function that returns NaN or an infinity from finite arguments, an
integer `**` that leaves 64 bits), and any exception raised by native code runs the call
again on the Python backend, which raises exactly what CPython raises. A module Numba
cannot type, or that uses a construct that is not lowered (a dict, a set, `print`, a
runtime helper, SciPy, random draws), runs on the Python backend: the reason and the
user's file:line are recorded (`FALLBACKS`, `tapeless show --backend native`).
"""

from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import itertools
import math
import os
import re
import sys
import tempfile
import time
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import runtime as _rt
from ..ir.nodes import Location
from .native_affine import lower_affine_loops
from .native_ast import parents as _parents
from .native_checkpoint import Unlowered, lower_checkpointed_loops
from .native_closures import lift_branch_closures, lower_branch_selects
from .native_given import give_back_nothing
from .native_intlists import lower_flat_comprehensions, lower_int_lists
from .native_loops import (
    lower_item_sums,
    lower_linked_stacks,
    lower_list_growth,
    lower_list_sens,
    lower_nested_sums,
    lower_saved_lengths,
    lower_split_items,
)
from .native_paths import add_path_entry
from .native_recompute import recompute_saved_items
from .native_records import (
    accumulate_recursive_sens,
    lower_recursive_records,
    share_item_lists,
)
from .native_vmap import generic_select
from .pygen import Compiled

# Runtime helpers with a native twin (`_nt_<name>` in `_HELPERS`).
# (By the runtime functions themselves, whose names the generated code spells; `pow` is
# the builtin the generated code calls for `**`.)
_OVERLOADS = ("pow", *[f.__name__ for f in (
    _rt.gadd, _rt.unbroadcast, _rt.own, _rt.to_structure, _rt.from_structure, _rt.sens_of,
    _rt.getitem_sens, _rt.fdiv, _rt.check_bound, _rt.check_scalar_output, _rt.sens_index,
    _rt.reshape_like, _rt.expand_reduced, _rt.index_update, _rt.index_update_inplace,
    _rt.immutable_item, _rt.dense_sens, _rt.scatter_add, _rt.scatter_add_known,
    _rt.ones_like_output, _rt.lift, _rt.repeat_sens, _rt.scatter_onto,
    _rt.scatter_onto_known, _rt.gadd_owned, _rt.element_sens_small, _rt.broadcast_like)])
_NATIVE_RUNTIME = {"as_sequence", "unpack", *_OVERLOADS}
# Overloads the lowering itself calls (`native_loops`), not runtime helpers.
_LOWERING_OVERLOADS = ("unwrap", "item_sens", "scatter_into", "add_into", "add_element",
                       "zeros_for", "items_of",
                       "split_at", "split_items", "saved_bytes", "abs", "is_tuple",
                       "is_list", "is_sequence")
# `math` functions whose result is checked (`_CHECKED_MATH`): CPython raises where the
# C library returns NaN or an infinity from finite arguments; Numba returns the value.
_MATH_ONE = ("acos acosh asin asinh atan atanh cos cosh erf erfc exp expm1 gamma lgamma "
             "log log10 log1p log2 sin sinh sqrt tan tanh exp2 cbrt").split()
_MATH_TWO = ("pow atan2 fmod hypot copysign").split()
# `math` functions that convert a float to an int (CPython raises on NaN and infinities,
# and returns big ints where Numba's would wrap around).
_MATH_TO_INT = ("floor ceil trunc").split()
# Beyond this, a float converted to int or an int power leaves int64.
_INT_LIMIT = 9.0e18

_HELPERS = '''

# --- native helpers (tapeless.backend.native) --------------------------------------------

def _nt_as_sequence(iterable):
    return iterable


def _nt_unpack(value, n):
    if len(value) != n:
        raise ValueError("wrong number of values to unpack")
    return value


def _nt_never():
    return False
'''.replace("LIMIT", repr(_INT_LIMIT))

_ONE = '''

def _nt_math_NAME(x):
    r = math.NAME(x)
    if (r != r and x == x) or (math.isinf(r) and math.isfinite(x)):
        raise ValueError("math domain error")
    return r
'''
_TWO = '''

def _nt_math_NAME(x, y):
    r = math.NAME(x, y)
    if (r != r and x == x and y == y) or (math.isinf(r) and math.isfinite(x)
                                          and math.isfinite(y)):
        raise ValueError("math domain error")
    return r
'''
_TO_INT = '''

def _nt_math_NAME(x):
    if isinstance(x, int):
        return x
    if not abs(x) < LIMIT:
        raise OverflowError("cannot convert float to a 64-bit integer")
    return math.NAME(x)
'''.replace("LIMIT", repr(_INT_LIMIT))


@dataclass(frozen=True)
class Fallback:
    """A compiled program that runs on the Python backend, and why."""

    function: str  # the generated function (graph) where native lowering stopped
    reason: str
    where: Location | None  # the user's source, where known

    def __str__(self) -> str:
        at = f"{self.where}: " if self.where is not None else ""
        return f"{at}{self.function} runs on the Python backend: {self.reason}"


# Every fallback of this process, in order (what `tapeless show --backend native` prints).
FALLBACKS: list[Fallback] = []


class _Refused(Exception):
    def __init__(self, reason: str, line: int | None, lines: list[int] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.line = line
        # (lines to say instead, the first with a line of the user's own: `user_line`)
        self.lines = lines or []


def available() -> bool:
    """Whether Numba can be imported."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def cache_dir() -> Path | None:
    """The directory where native modules and Numba's cache of them are written: a
    directory this user owns and no one else may write (`$TAPELESS_CACHE_DIR`, else
    `tapeless/native` under the user's cache directory), or None where caching is off
    (`TAPELESS_NATIVE_CACHE=0`, `NUMBA_CACHE_DIR` set, or no such directory)."""
    if os.environ.get("TAPELESS_NATIVE_CACHE", "1") == "0":
        return None
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None  # (Numba would then read and write its cache elsewhere)
    base = os.environ.get("TAPELESS_CACHE_DIR")
    if base:
        root = Path(base)
    elif sys.platform == "win32":
        root = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / \
            "tapeless"
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Caches" / "tapeless"
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tapeless"
    path = root / "native"
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = path.stat()
    except OSError:
        return None
    if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
        return None  # (someone else could have written there)
    return path


class _Lowering(ast.NodeTransformer):
    """Rewrites a generated module for Numba (see the module's docstring); refuses, with
    the line, what it does not lower."""

    def __init__(self, namespace: dict[str, Any] | None = None) -> None:
        self.namespace = namespace or {}
        self.math: set[str] = set()
        self.loops = 0
        self.numpy_aliases: dict[str, str] = {}  # (`_zeros = np.zeros`)
        self.once: list[set[str]] = []  # (`_assigned_once` of the functions being visited)

    def refuse(self, node: ast.AST, reason: str) -> None:
        raise _Refused(reason, getattr(node, "lineno", None))

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id == "print":
            self.refuse(node, "print (Numba formats numbers differently from CPython)")
        if node.id in ("dict", "set", "frozenset"):
            self.refuse(node, f"a {node.id} (only numbers, tuples, lists and arrays are "
                              "lowered)")
        return node

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        self.refuse(node, "a dict (only numbers, tuples, lists and arrays are lowered)")
        return node

    def visit_Set(self, node: ast.Set) -> ast.AST:
        self.refuse(node, "a set (only numbers, tuples, lists and arrays are lowered)")
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        self.refuse(node, "an f-string")
        return node

    def visit_Try(self, node: ast.Try) -> ast.AST:
        self.refuse(node, "try/except")
        return node

    def visit_Global(self, node: ast.Global) -> ast.AST:
        self.refuse(node, "a global statement")
        return node

    def visit_Nonlocal(self, node: ast.Nonlocal) -> ast.AST:
        self.refuse(node, "a nonlocal statement")
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        """A closure's free variables are bound as keyword-only defaults (`x=x`, which
        Numba does not compile); where each such name is assigned once in the enclosing
        function, the closure reads it instead (the same value)."""
        once = _assigned_once(node)
        for inner in ast.walk(node):
            if inner is node or not isinstance(inner, ast.FunctionDef):
                continue
            args = inner.args
            captured = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                        if isinstance(d, ast.Name) and d.id == a.arg]
            if captured and len(captured) == len(args.kwonlyargs) and \
                    all(name in once for name in captured):
                args.kwonlyargs, args.kw_defaults = [], []
            elif args.kwonlyargs:
                self.refuse(_recursive_call(node, inner) or inner,
                            _closure_reason(node, inner, captured, once))
        self.once.append(once)
        self.generic_visit(node)
        self.once.pop()
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if isinstance(node.value, ast.Name):
            owner, attr = node.value.id, node.attr
            if owner == "_rt":
                if attr in ("ZERO", "UNBOUND"):  # (both are None in native code)
                    return ast.copy_location(ast.Constant(None), node)
                if attr == "count_all":  # (NumPy's C function: Numba has np.count_nonzero)
                    return ast.copy_location(ast.Attribute(
                        ast.Name("np", ast.Load()), "count_nonzero", node.ctx), node)
                if attr not in _NATIVE_RUNTIME:
                    self.refuse(node, f"the runtime helper {attr} (no native version)")
                return ast.copy_location(ast.Name(f"_nt_{attr}", node.ctx), node)
            if owner in ("_sp", "_sla"):
                self.refuse(node, "SciPy (no Numba implementation is used)")
            if owner == "math" and attr in _MATH_ONE + _MATH_TWO + _MATH_TO_INT:
                self.math.add(attr)
                return ast.copy_location(ast.Name(f"_nt_math_{attr}", node.ctx), node)
        if isinstance(node.value, ast.Attribute) and isinstance(node.value.value, ast.Name) \
                and node.value.value.id == "np" and node.value.attr == "random":
            self.refuse(node, "a random draw (Numba keeps its own generator state)")
        self.generic_visit(node)
        return node

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        if _conses(node):
            # (Numba's type inference does not end on a tuple type that grows each turn.)
            self.refuse(node, "a linked stack of tuples (the derivative of a loop inside a "
                              "loop), which Numba cannot type")
        # (`_concatenate = np.concatenate`: the names that stand for NumPy's joins.)
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) and \
                _numpy_name(node.value) is not None:
            self.numpy_aliases[node.targets[0].id] = _numpy_name(node.value) or ""
        self.generic_visit(node)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        """`np.concatenate([a, b])`: Numba joins a tuple of arrays, not a list;
        `isinstance(v, _const)` names its classes (Numba reads no global tuple of
        classes; it decides `isinstance` by types, pruning the other branch)."""
        self.generic_visit(node)
        f = node.func
        if isinstance(f, ast.Name) and f.id == "abs" and \
                self.namespace.get("abs", builtins.abs) is builtins.abs:
            # (the builtin, by its argument's type: `_nt_abs`)
            node.func = ast.copy_location(ast.Name("_nt_abs", ast.Load()), f)
            return node
        if isinstance(f, ast.Name) and f.id == "isinstance" and len(node.args) == 2 and \
                isinstance(node.args[1], ast.Name):
            classes = _container_classes(self.namespace.get(node.args[1].id))
            if classes is not None and (test := _container_test(
                    node, classes, self.once[-1] if self.once else set())) is not None:
                return test
            if classes is not None:
                node.args[1] = ast.copy_location(ast.Tuple(
                    [ast.Name(c.__name__, ast.Load()) for c in classes], ast.Load()),
                    node.args[1])
        numpy = _numpy_name(f) or (self.numpy_aliases.get(f.id) if isinstance(f, ast.Name)
                                   else None)
        if numpy in _JOINS and node.args and isinstance(node.args[0], ast.List):
            node.args[0] = ast.copy_location(ast.Tuple(node.args[0].elts, ast.Load()),
                                             node.args[0])
        if numpy is not None or isinstance(f, ast.Attribute) and f.attr == "astype":
            # (A Python type as a dtype is NumPy's type of it; Numba knows only those.)
            for i, arg in enumerate(node.args):
                node.args[i] = _as_dtype(arg)
            for keyword in node.keywords:
                if keyword.arg == "dtype":
                    keyword.value = _as_dtype(keyword.value)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Pow):
            return ast.copy_location(ast.Call(ast.Name("_nt_pow", ast.Load()),
                                              [node.left, node.right], []), node)
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Pow) and isinstance(node.target, ast.Name):
            value = ast.Call(ast.Name("_nt_pow", ast.Load()),
                             [ast.Name(node.target.id, ast.Load()), node.value], [])
            return ast.copy_location(ast.Assign([node.target], value), node)
        return node

    def visit_For(self, node: ast.For) -> ast.AST | list[ast.stmt]:
        """`for x in reversed(seq)` as a loop over indices (Numba has no `reversed`)."""
        self.generic_visit(node)
        it = node.iter
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and
                it.func.id == "reversed" and len(it.args) == 1 and not it.keywords):
            return node
        self.loops += 1
        seq, index = f"_nt_seq{self.loops}", f"_nt_i{self.loops}"
        load = ast.Load()
        start = ast.BinOp(ast.Call(ast.Name("len", load), [ast.Name(seq, load)], []),
                          ast.Sub(), ast.Constant(1))
        loop = ast.For(
            target=ast.Name(index, ast.Store()),
            iter=ast.Call(ast.Name("range", load),
                          [start, ast.Constant(-1), ast.Constant(-1)], []),
            body=[ast.Assign([node.target], ast.Subscript(ast.Name(seq, load),
                                                          ast.Name(index, load), load)),
                  *node.body],
            orelse=node.orelse)
        bind = ast.Assign([ast.Name(seq, ast.Store())], it.args[0])
        out = [ast.copy_location(bind, node), ast.copy_location(loop, node)]
        for n in out:
            for sub in ast.walk(n):
                if not hasattr(sub, "lineno"):
                    ast.copy_location(sub, node)
        return out


def _container_classes(classes: Any) -> tuple[type, ...] | None:
    """The classes of a tuple of `tuple`, `list` and `dict` (generated code's
    `isinstance(v, _const)`, as `batch_rules.as_mask` tests a condition) that a native
    value may be an instance of: `dict` left out (no dict is lowered), None for another
    tuple."""
    if not isinstance(classes, tuple) or not classes or \
            not all(c in (tuple, list, dict) for c in classes):
        return None
    return tuple(c for c in classes if c is not dict)


# The overloads that test a value's type for `isinstance(v, classes)` (`_container_test`).
_CONTAINER_TESTS: dict[tuple[type, ...], str] = {
    (tuple,): "_nt_is_tuple", (list,): "_nt_is_list", (tuple, list): "_nt_is_sequence",
    (list, tuple): "_nt_is_sequence"}


def _container_test(call: ast.Call, classes: tuple[type, ...], once: set[str]
                    ) -> ast.expr | None:
    """`isinstance(v, classes)` (classes from `_container_classes`) as native code
    decides it where Numba's `isinstance` does not: False for no class; for a variable
    bound on several paths (a loop's state; Numba refuses `isinstance` of a value joined
    from branches), the overload that answers by the type the paths' values share. None:
    Numba's `isinstance` decides it (and prunes the branch it rules out)."""
    v = call.args[0]
    if not classes:
        return ast.copy_location(ast.Constant(False), call)
    if not isinstance(v, ast.Name) or v.id in once:
        return None
    return ast.copy_location(ast.Call(ast.Name(_CONTAINER_TESTS[classes], ast.Load()),
                                      [v], []), call)


def _recursive_call(outer: ast.FunctionDef, inner: ast.FunctionDef) -> ast.Call | None:
    """The first call of `outer` by itself outside its closure `inner` (where the
    callee's backpropagator is made), if any."""
    in_inner = {id(n) for n in ast.walk(inner)}
    return next((c for c in ast.walk(outer) if isinstance(c, ast.Call) and
                 _is_named(c.func, outer.name) and id(c) not in in_inner), None)


def _closure_reason(outer: ast.FunctionDef, inner: ast.FunctionDef, captured: list[str],
                    once: set[str]) -> str:
    """Why the closure `inner` of `outer` is not lowered: it keeps values that differ
    from call to call as keyword defaults (Numba compiles no function made at run time
    with defaults: `op_MAKE_FUNCTION with kwdefaults`). For a recursion the reason is
    given at the recursive call (the refusal's line): the callee's backpropagator that it
    returns is what the closure's captures keep."""
    changing = [name for name in captured if name not in once]
    what = f"the closure {inner.name} of {outer.name}"
    if inner.name.startswith("B_"):
        what = f"the backpropagator {inner.name} of {outer.name}, a closure value,"
    reason = (f"{what} captures values bound more than once ({', '.join(changing[:4])})"
              if changing else f"{what} captures values by keyword defaults")
    if _recursive_call(outer, inner) is not None:
        reason += (f"; {outer.name} is recursive: this call returns the callee's "
                   f"{inner.name}, which the captures keep (its stack of saved values), "
                   "so the closure's type contains itself, which Numba cannot represent; "
                   "lambda lifting would need one record type for both branches' "
                   "captures and a stack of callee records, which the lowering does not "
                   "build")
    return reason + " (Numba compiles no closure made at run time with captured values)"


def _conses(node: ast.Assign) -> bool:
    """Whether `node` is `s = (item, s)` (or assigns such a pair among others)."""
    targets = node.targets[0].elts if isinstance(node.targets[0], ast.Tuple) and \
        isinstance(node.value, ast.Tuple) else node.targets
    values = node.value.elts if len(targets) > 1 and isinstance(node.value, ast.Tuple) \
        else [node.value]
    for target, value in zip(targets, values, strict=False):
        if isinstance(target, ast.Name) and isinstance(value, ast.Tuple) and value.elts and \
                isinstance(value.elts[-1], ast.Name) and value.elts[-1].id == target.id:
            return True
    return False


_JOINS = {"concatenate", "stack", "vstack", "hstack", "column_stack"}


_DTYPES = {"float": np.dtype(float).name, "int": np.dtype(int).name, "bool": "bool_",
           "complex": np.dtype(complex).name}


def _as_dtype(node: ast.expr) -> ast.expr:
    """`np.float64` for the name `float` (and so on), other expressions as they are."""
    if isinstance(node, ast.Name) and node.id in _DTYPES:
        return ast.copy_location(ast.Attribute(ast.Name("np", ast.Load()), _DTYPES[node.id],
                                               ast.Load()), node)
    return node


def _numpy_name(node: ast.AST) -> str | None:
    """`name` for the expression `np.name`."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
            node.value.id == "np":
        return node.attr
    return None


def _assigned_once(fn: ast.FunctionDef) -> set[str]:
    """The names bound exactly once in `fn` and the functions nested in it (parameters
    count as a binding; so do loop targets, however many times the loop runs)."""
    counts: dict[str, int] = {}
    # (A closure's `x=x` parameters are the bindings being replaced.)
    captures = {id(a) for n in ast.walk(fn) if isinstance(n, ast.FunctionDef) and n is not fn
                for a in n.args.kwonlyargs}
    for node in ast.walk(fn):
        names: list[str] = []
        if isinstance(node, ast.arg) and id(node) not in captures:
            names = [node.arg]
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names = [node.id]
        elif isinstance(node, ast.FunctionDef) and node is not fn:
            names = [node.name]
        elif isinstance(node, ast.For):
            names = [n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)]
            for n in names:  # (a loop target is bound many times)
                counts[n] = counts.get(n, 0) + 1
        for n in names:
            counts[n] = counts.get(n, 0) + 1
    return {n for n, k in counts.items() if k == 1}


def _helpers(math_names: set[str]) -> str:
    parts = [_HELPERS]
    for name in sorted(math_names):
        template = _TWO if name in _MATH_TWO else _TO_INT if name in _MATH_TO_INT else _ONE
        parts.append(template.replace("NAME", name))
    return "".join(parts)


def _fingerprint(value: Any) -> bytes | None:
    """What a global constant of the module contributes to its cache key (Numba freezes
    globals into the code); None for a value that cannot be keyed by content."""
    if value is np or value is math:
        return b"module " + value.__name__.encode()
    if isinstance(value, np.ndarray):
        return b"array " + repr((value.dtype.str, value.shape)).encode() + value.tobytes()
    if isinstance(value, (bool, int, float, complex, str, type(None), np.generic)):
        return b"value " + repr((type(value).__name__, value)).encode()
    if type(value) is tuple:
        parts = [_fingerprint(v) for v in value]
        if any(p is None for p in parts):
            return None
        return b"tuple(" + b",".join(p for p in parts if p is not None) + b")"
    return None


def _line_of(error: BaseException, filename: str) -> int | None:
    """The line of the generated module that a Numba error points at."""
    found = re.findall(r'File "([^"]+)", line (\d+)', str(error))
    for file, line in reversed(found):
        if file == filename or os.path.basename(file) == os.path.basename(filename):
            return int(line)
    return None


def _numba_reason(error: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("Failed in", "File ", "During:",
                                                      "<source elided>", "^"))]
    head = lines[0] if lines else type(error).__name__
    return f"Numba cannot type it: {head[:200]}"


RTOL = 1e-12


def _difference(expected: Any, actual: Any) -> str | None:
    """How `actual` (a native result) differs from `expected` (the Python backend's),
    or None: numbers of the same kind within `RTOL` (exact for ints and bools), arrays
    of the same shape and dtype, containers of the same type and length."""
    if isinstance(expected, (bool, np.bool_)):
        return None if isinstance(actual, (bool, np.bool_)) and bool(actual) == bool(
            expected) else f"{actual!r} != {expected!r}"
    if isinstance(expected, (int, np.integer)):
        return None if isinstance(actual, (int, np.integer)) and not isinstance(
            actual, (bool, np.bool_)) and int(actual) == int(expected) else \
            f"{actual!r} != {expected!r}"
    if isinstance(expected, (float, np.floating)):
        if not isinstance(actual, (float, np.floating)):
            return f"{type(actual).__name__} != {type(expected).__name__}"
        e, a = float(expected), float(actual)
        if math.isnan(e) and math.isnan(a) or a == e or abs(a - e) <= RTOL * abs(e):
            return None
        return f"{actual!r} != {expected!r}"
    if isinstance(expected, np.ndarray):
        if not isinstance(actual, np.ndarray) or actual.shape != expected.shape or \
                actual.dtype != expected.dtype:
            return "array shape or dtype"
        if expected.dtype.kind in "fc":
            ok = np.allclose(actual, expected, rtol=RTOL, atol=0, equal_nan=True)
        else:
            ok = np.array_equal(actual, expected)
        return None if ok else "array values"
    if type(expected) in (tuple, list):
        if type(actual) is not type(expected) or len(actual) != len(expected):
            return f"{type(actual).__name__} != {type(expected).__name__} of length " \
                   f"{len(expected)}"
        for e, a in zip(expected, actual, strict=True):
            found = _difference(e, a)
            if found is not None:
                return found
        return None
    if expected is None or isinstance(expected, str):
        return None if actual == expected and type(actual) is type(expected) else \
            f"{actual!r} != {expected!r}"
    return f"a result of type {type(expected).__name__}"


def _without_nones(expected: Any, out: Any) -> tuple[Any, bool]:
    """`expected` (the Python backend's result) with None at the places where the native
    result `out` holds None, and whether each such place of `expected` has no NumPy
    scalar type (`type_spec` None there: the types of the others tell all) and is None
    or zeros (what native code's None stands for; a value there leaves the path to be
    checked again by a later call)."""
    if out is None:
        return None, type_spec(expected) is None and _none_or_zeros(expected)
    if type(out) is tuple and type(expected) is tuple and len(out) == len(expected):
        parts = [_without_nones(e, o) for e, o in zip(expected, out, strict=True)]
        return tuple(p for p, _ in parts), all(k for _, k in parts)
    return expected, True


def _none_or_zeros(value: Any) -> bool:
    if value is None or value is _rt.ZERO or value is _rt.UNBOUND:
        return True
    if type(value) in (tuple, list):
        return all(_none_or_zeros(v) for v in value)
    if isinstance(value, (np.ndarray, float, int)):
        return not np.any(value)
    return False


def type_spec(expected: Any) -> Any:
    """The NumPy scalar types of the Python backend's result `expected` (JSON: a dtype's
    string, or a list of the items' for a tuple or list, headed by "tuple" or "list"),
    or None where there are none."""
    if isinstance(expected, np.generic):
        return expected.dtype.str
    if type(expected) in (tuple, list):
        parts = [type_spec(e) for e in expected]
        if all(p is None for p in parts):
            return None
        return [type(expected).__name__, parts]
    return None


def retype_from(spec: Any) -> Any:
    """A function giving a native result (Numba returns Python numbers) the NumPy scalar
    types that `spec` (`type_spec`) names, or None where it names none."""
    if spec is None:
        return None
    if isinstance(spec, str):
        t = np.dtype(spec).type
        return lambda v: t(v)
    kind = tuple if spec[0] == "tuple" else list
    parts = [retype_from(p) for p in spec[1]]
    return lambda v: kind(p(x) if p is not None else x for p, x in zip(parts, v, strict=True))


_RANDOM_STATE = (np.random.Generator, np.random.RandomState, np.random.BitGenerator)
# A first call shorter than this is timed twice (the faster counts).
_TIME_AGAIN = 0.05


def _timed(fn: Any, args: tuple) -> tuple[float, Any]:
    """(seconds, result) of `fn(*args)`: of the faster of two calls if one is short."""
    t0 = time.perf_counter()
    out = fn(*args)
    best = time.perf_counter() - t0
    if best < _TIME_AGAIN:
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, out


def _us(t: float) -> str:
    return f"{t * 1e6:.0f} µs" if t < 1e-3 else f"{t * 1e3:.1f} ms"


class NativeFunction:
    """A compiled program's entry: native code, with the Python backend's code for the
    calls native code must not answer (see the module's docstring)."""

    def __init__(self, python: Any, native: Any, module: _Module | None,
                 fallback: Fallback | None):
        self.python = python
        self.native = native
        self.module = module
        self.fallback = fallback
        self.first = True
        # Converts native results to the Python backend's NumPy scalar types, or None
        # (`retype_from` of `type_spec`).
        self.types: Any = None
        self.type_spec: Any = None
        # Where the entry returns `(value, k)` (`native_paths`: it returns from several
        # places), the `type_spec` of each `return` k a call took and passed its check
        # through, with its `retype_from`; None where it returns the value.
        self.paths: dict[int, Any] | None = None
        self.path_types: dict[int, Any] = {}
        # Called with this entry once its first call settled it: its native code passed
        # the checks, or it fell back (`native_cache.save`: the record a second process
        # starts from).
        self.on_settled: Any = None
        # Builds the Python backend's own program (optimized for CPython, so faster than
        # `python`, the code lowered for Numba as CPython runs it), which a program that
        # falls back runs from then on (`use_python_backend`); None: `python` is it.
        self.python_backend: Any = None
        # The Python backend's program it runs, once it fell back (`Compiled`: its source
        # goes into the start record, `native_cache.save`); None where it has none.
        self.python_program: Compiled | None = None

    def use_python_backend(self) -> None:
        """Run the Python backend's own program from now on (the program fell back)."""
        build, self.python_backend = self.python_backend, None
        if build is not None:
            self.python_program = build()
            self.python = self.python_program.fn

    @property
    def is_native(self) -> bool:
        return self.native is not None

    def _fall_back(self, error: BaseException) -> None:
        assert self.module is not None
        self.fallback = self.module.fallback(_numba_reason(error), _line_of(
            error, self.module.filename))
        self.native = None
        self._settled()

    def _settled(self) -> None:
        if self.native is None:
            self.use_python_backend()
        if self.on_settled is not None:
            self.on_settled(self)
            self.on_settled = None

    def __call__(self, *args: Any) -> Any:
        native = self.native
        if native is None:
            return self.python(*args)
        from numba.core.errors import NumbaError

        try:
            if self.first:
                return self._first_call(args)
            out = native(*args)
            types = self.types
            if self.paths is not None:
                out, path = out
                if path not in self.paths:
                    return self._first_on_path(args, out, path)
                types = self.path_types[path]
            if out is None or type(out) is tuple and any(v is None for v in out):
                # (None stands for the symbolic zero and for an unbound variable in native
                # code: the Python backend says which it was.)
                return self.python(*args)
        except NumbaError as error:
            self._fall_back(error)
            return self.python(*args)
        except Exception:  # noqa: BLE001 - CPython's exception comes from the Python code
            return self.python(*args)
        return types(out) if types is not None else out

    def _first_on_path(self, args: tuple, out: Any, path: int) -> Any:
        """A call that took a `return` no call before it took (`native_paths`): checked
        against the Python backend as the first call is; that `return`'s results get
        the Python result's NumPy types from then on, or the program falls back. A
        result holding None is checked at its other places and recorded too."""
        assert self.module is not None and self.paths is not None
        expected = self.python(*args)
        # (None in native code: a zero, an unbound value or None itself; the places that
        # hold one are not compared, and the path is recorded where the Python result
        # has no NumPy scalar type there to learn)
        compared, known = _without_nones(expected, out)
        if not known:
            return expected
        if self._differs(compared, out):
            return expected
        self.paths[path] = type_spec(expected)
        self.path_types[path] = retype_from(self.paths[path])
        return expected

    def _differs(self, expected: Any, out: Any) -> bool:
        """Whether the native result `out` differs from the Python backend's `expected`
        (`_difference`); where it does, the program falls back for good."""
        assert self.module is not None
        problem = _difference(expected, out)
        if problem is not None:
            self.fallback = self.module.fallback(
                f"its result differs from the Python backend's ({problem})", None)
            self.native = None
            self._settled()
        return problem is not None

    def _overloads(self, dispatcher: Any, args: tuple) -> list[Any]:
        """The compiled code of `dispatcher` (a function of the module) this call may
        run: of the entry function, the code for these arguments' types (the module
        is shared by the signatures whose code reads the same); of the others, all."""
        if dispatcher is self.native:
            import numba

            try:
                found = dispatcher.overloads.get(tuple(numba.typeof(a) for a in args))
            except (TypeError, ValueError):
                found = None
            if found is not None:
                return [found]
        return list(dispatcher.overloads.values())

    def _first_call(self, args: tuple) -> Any:
        """Compile, and check the native result against the Python backend's once: a
        difference (beyond `RTOL`, or of structure) makes the program fall back for good;
        NumPy scalar types of the Python result are kept (`type_spec`)."""
        assert self.module is not None
        if any(isinstance(a, _RANDOM_STATE) for a in args):
            # (Its draws are effects: the call must run once, as CPython runs it.)
            self.fallback = self.module.fallback("a random generator argument", None)
            self.native = None
            self.use_python_backend()
            return self.python(*args)
        t_python, expected = _timed(self.python, args)
        from numba.core.errors import NumbaError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = self.native(*args)
        except NumbaError:
            raise
        except Exception as error:  # noqa: BLE001
            if not self.native.signatures:  # (Numba's compiler failed, not the program)
                self.fallback = self.module.fallback(
                    f"Numba cannot compile it: {type(error).__name__}: {error}",
                    _line_of(error, self.module.filename))
                self.native = None
                self._settled()
            return expected  # (a check of native code raised: see the next call)
        self.first = False
        path = None
        if self.paths is not None:
            out, path = out
        for dispatcher in self.module.dispatchers:
            for compiled in self._overloads(dispatcher, args):
                found = unified_types(str(compiled.type_annotation))
                if found is not None:
                    self.fallback = self.module.fallback(
                        found[0], found[1] or dispatcher.py_func.__code__.co_firstlineno)
                    self.native = None
                    self._settled()
                    return expected
        if self._differs(expected, out):
            return expected
        self.type_spec = type_spec(expected)
        self.types = retype_from(self.type_spec)
        if self.paths is not None and path is not None:
            self.paths[path], self.path_types[path] = self.type_spec, self.types
        if os.environ.get("TAPELESS_NATIVE_SPEED_CHECK", "1") != "0":
            t_native, _ = _timed(self.native, args)
            if t_native > t_python:
                self.fallback = self.module.fallback(
                    f"no faster than the Python backend at its first call "
                    f"({_us(t_native)} against {_us(t_python)}: NumPy-bound code gains "
                    "nothing from Numba)", None)
                self.native = None
        if self.native is not None and self.module.recursive_key is not None:
            try:
                _cache_recursion(self, args, out)
            except Exception:  # noqa: BLE001 - not cached, as before
                pass
        self._settled()
        return expected


def _unresolved(dispatcher: Any) -> bool:
    """Whether code `dispatcher` compiled calls a function through a symbol resolved as
    it is loaded (a recursive call of another signature, or through another function:
    Numba cannot load such code from its cache)."""
    return any(".numba.unresolved$" in c.library.get_llvm_str()
               for c in dispatcher.overloads.values())


def _cache_recursion(entry: NativeFunction, args: tuple, out: Any) -> None:
    """Cache the native code of a recursive module (`entry`'s, after a first call that
    passed its checks with result `out` for `args`). Numba 0.68 crashes loading the
    cached code of a recursive function compiled as it was called (numba#6061): a call
    of another signature (a literal `0` where the recursion passes an `int64`) is linked
    as the code loads. So the module is compiled again, each function for the
    signatures its first compile inferred (literals widened), callees first, no new
    signature compiled while its callers are; the code is written to Numba's cache only
    where none of it links a call as it loads, and its result for `args` is `out`; then
    `entry` runs that code. Any failure leaves `entry` as it was (not cached)."""
    module = entry.module
    assert module is not None and module.tree is not None and module.recursive_key
    directory = cache_dir()
    if directory is None:
        return
    lazy = {d.py_func.__name__: d for d in module.dispatchers}
    calls = {n.name: [c.func.id for c in ast.walk(n) if isinstance(c, ast.Call) and
                      isinstance(c.func, ast.Name) and c.func.id in lazy]
             for n in module.tree.body if isinstance(n, ast.FunctionDef)}
    order: list[str] = []
    seen: set[str] = set()

    def post(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for callee in calls.get(name, ()):
            post(callee)
        order.append(name)

    post(module.root)
    stem = f"{_safe(module.root)}_{module.recursive_key[:24]}"
    path = directory / f"{stem}.py"
    _write_once(path, module.compiled.source)
    name = f"tapeless_native.{stem}"
    mod = sys.modules.get(name)
    if mod is None:
        # (Registered while it compiles: Numba names a function's code, and finds the
        # code of a recursive call, by its module's name.)
        mod = sys.modules[name] = types.ModuleType(name)
        try:
            if not _compile_explicitly(mod, module, path, lazy, order, args, out):
                del sys.modules[name]
                return
        except BaseException:
            sys.modules.pop(name, None)
            raise
    else:  # (cached by an earlier program of this process: its code answers these too)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if _difference(out, getattr(mod, module.root)(*args)) is not None:
                return
    module.dispatchers = [getattr(mod, fn_name) for fn_name in lazy]
    module.filename, module.stem, module.cached, module.explicit = str(path), stem, True, True
    entry.native = getattr(mod, module.root)


def _compile_explicitly(mod: types.ModuleType, module: _Module, path: Path,
                        lazy: dict[str, Any], order: list[str], args: tuple,
                        out: Any) -> bool:
    """Compile `module`'s functions into `mod` for the signatures of their first compile
    (`lazy`), in `order`, and write the code to Numba's cache (see `_cache_recursion`);
    False where it is not cached."""
    import numba
    from numba.core import types as nbtypes

    assert module.tree is not None
    mod.__file__ = str(path)
    mod.__dict__.update(module.namespace)
    mod.__dict__["__name__"] = mod.__name__
    exec(compile(module.tree, str(path), "exec"), mod.__dict__)  # noqa: S102
    for fn_name in lazy:
        setattr(mod, fn_name, numba.njit(cache=False, **_NJIT)(getattr(mod, fn_name)))
    for fn_name in order:
        dispatcher = getattr(mod, fn_name)
        signatures = dict.fromkeys(tuple(nbtypes.unliteral(a) for a in s)
                                   for s in lazy[fn_name].signatures)
        for signature in signatures:
            dispatcher.compile(signature)
        if signatures:
            dispatcher.disable_compile()  # (its callers use these signatures)
    eager = [getattr(mod, fn_name) for fn_name in lazy]
    for dispatcher in eager:
        dispatcher.disable_compile(False)
    if any(_unresolved(d) for d in eager):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = getattr(mod, module.root)(*args)
    if _difference(out, again) is not None:
        return False
    for dispatcher in eager:
        dispatcher.enable_caching()
        for signature, compiled in dispatcher.overloads.items():
            dispatcher._cache.save_overload(signature, compiled)
        _load_only(dispatcher)
    return True


def _load_only(dispatcher: Any) -> None:
    """Let `dispatcher` (of a recursive module) load code from Numba's cache but not
    write to it: code it compiles as it is called may link a recursive call as it
    loads, which crashes a process loading it (`_cache_recursion`)."""
    dispatcher._cache.save_overload = lambda *args: None


def _parse_or_none(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


class _Module:
    """A generated module lowered for Numba: its file, its functions, the user's lines."""

    def __init__(self, compiled: Compiled, root: str):
        self.compiled = compiled
        self.root = root
        self.filename = compiled.filename
        self.tree: ast.Module | None = None
        # The name it is loaded under (`tapeless_native.STEM`), whether Numba caches its
        # code, and the globals it was run with.
        self.stem = ""
        self.cached = False
        self.namespace: dict[str, Any] = {}
        # Its functions compiled by Numba (their typed code is checked: `unified_types`).
        self.dispatchers: list[Any] = []
        # A recursive module's cache key (not cached as first compiled:
        # `_cache_recursion`), and whether its code in Numba's cache was compiled for
        # explicit signatures (a second process loads it, compiling nothing it caches).
        self.recursive_key: str | None = None
        self.explicit = False

    def location(self, line: int | None) -> Location | None:
        """The user's source of a line of the generated module; where it has none (or
        no line is known), that of the function the program was compiled from."""
        found = self.compiled.linemap.get(line) if line is not None else None
        if found is None:
            tree = self.tree or _parse_or_none(self.compiled.source)
            for node in tree.body if tree is not None else []:
                if isinstance(node, ast.FunctionDef) and node.name == self.root:
                    found = self.compiled.linemap.get(node.lineno)
        return found

    def user_line(self, lines: list[int]) -> int | None:
        """The first of `lines` whose user's source is not the function's own line
        (where code inlined from a helper maps), else None."""
        own = self.location(None)
        return next((n for n in lines if (at := self.location(n)) is not None and
                     at != own), None)

    def function_at(self, line: int | None) -> str:
        tree = self.tree or _parse_or_none(self.compiled.source)
        if line is not None and tree is not None:
            for node in tree.body:
                if isinstance(node, ast.FunctionDef) and \
                        node.lineno <= line <= (node.end_lineno or node.lineno):
                    return node.name
        return self.root

    def fallback(self, reason: str, line: int | None) -> Fallback:
        record = Fallback(self.function_at(line), reason, self.location(line))
        FALLBACKS.append(record)
        return record


# --- runtime helpers with native twins ------------------------------------------------
# In native code the symbolic zero is None; each helper is a Numba overload chosen by the
# types of its arguments (the module's functions call them by the `_nt_` names).


def _nt_gadd(a, b): ...
def _nt_unbroadcast(d, x): ...
def _nt_broadcast_like(d, x): ...
def _nt_own(x): ...
def _nt_to_structure(sens, like): ...
def _nt_from_structure(value): ...
def _nt_pow(a, b): ...
def _nt_sens_of(d, like): ...
def _nt_getitem_sens(d, x, index): ...
def _nt_fdiv(a, b): ...
def _nt_check_bound(value, name, where): ...
def _nt_check_scalar_output(out): ...
def _nt_sens_index(dd, index): ...
def _nt_reshape_like(d, x): ...
def _nt_expand_reduced(d, x, axis, keepdims): ...
def _nt_index_update(x, index, value): ...
def _nt_index_update_inplace(x, index, value): ...
def _nt_immutable_item(container, item): ...
def _nt_dense_sens(d): ...
def _nt_ones_like_output(out): ...
def _nt_lift(value): ...
def _nt_repeat_sens(d, seq): ...
def _nt_scatter_add(acc, x, indices, ds): ...
def _nt_scatter_add_known(acc, x, indices, ds): ...
def _nt_scatter_onto(acc, x, indices, ds): ...
def _nt_scatter_onto_known(acc, x, indices, ds): ...
def _nt_item_sens(d, x, index): ...
def _nt_scatter_into(acc, item): ...
def _nt_add_into(acc, d): ...
def _nt_add_element(acc, d, x, index): ...
def _nt_zeros_for(x): ...
def _nt_items_of(d, k): ...
def _nt_zeros_of(v): ...
def _nt_split_at(d, n): ...
def _nt_split_items(d, n, k): ...
def _nt_saved_bytes(value, depth): ...
def _nt_gadd_owned(a, b): ...
def _nt_element_sens_small(d, x, index): ...
def _nt_unwrap(x): ...
def _nt_abs(x): ...
def _nt_is_tuple(x): ...
def _nt_is_list(x): ...
def _nt_is_sequence(x): ...


_OVERLOADED = False


def _register_overloads() -> None:
    """Register the helpers' Numba implementations (once, when first needed)."""
    global _OVERLOADED
    if _OVERLOADED:
        return
    _OVERLOADED = True
    from numba import types as nt
    from numba.core.imputils import impl_ret_borrowed
    from numba.extending import intrinsic, overload, register_jitable

    def number(t: Any) -> bool:
        return isinstance(t, (nt.Float, nt.Integer, nt.Boolean))

    @intrinsic
    def unwrap(typingctx, x):
        """An optional value as its value (where a test for None has ruled None out:
        Numba does not narrow the type after `if x is None`)."""
        t = x.type if isinstance(x, nt.Optional) else x

        def codegen(context, builder, signature, args):
            value = context.cast(builder, args[0], x, t)
            return impl_ret_borrowed(context, builder, t, value)  # (a new reference)
        return t(x), codegen

    def optional_first(helper: Any) -> Any:
        """`helper(d, x)` for a `d` that is None or a value (a sensitivity that a
        loop's turn made, None before it): None's case or the value's, at run time
        (Numba's own conversion of an optional argument raises on None)."""
        def maybe(d, x):
            if d is None:
                return helper(None, x)
            return helper(unwrap(d), x)  # type: ignore[call-arg,unused-ignore]
        return maybe

    @overload(_nt_gadd)
    def _gadd(a, b):
        if isinstance(a, nt.NoneType):
            return lambda a, b: b
        if isinstance(b, nt.NoneType):
            return lambda a, b: a
        if isinstance(a, nt.Optional) or isinstance(b, nt.Optional):
            def maybe(a, b):
                if a is None:
                    return b
                if b is None:
                    return a
                # (an intrinsic takes the typing context first only where Numba's types
                # are installed: mypy without Numba sees no error here)
                return _nt_gadd(unwrap(a), unwrap(b))  # type: ignore[call-arg,unused-ignore]
            return maybe
        if isinstance(a, nt.List) and isinstance(b, nt.List):
            # (The sensitivity of a list: item by item, as `gadd`; never `+`, which joins.)
            def items(a, b):
                if len(a) != len(b):
                    raise ValueError("sensitivities of lists of different lengths")
                return [_nt_gadd(a[i], b[i]) for i in range(len(a))]
            return items
        if isinstance(a, nt.BaseTuple) and isinstance(b, nt.BaseTuple):
            if len(a) != len(b):
                return None
            parts = "".join(f"_nt_gadd(a[{i}], b[{i}]), " for i in range(len(a)))
            return _made(f"def items(a, b):\n    return ({parts})\n",
                         {"_nt_gadd": _nt_gadd})
        if isinstance(a, (nt.List, nt.BaseTuple)) or isinstance(b, (nt.List, nt.BaseTuple)):
            return None
        return lambda a, b: a + b

    @overload(_nt_gadd_owned)
    def _gadd_owned(a, b):
        # (`runtime.gadd_owned`: each ZERO or an array no one else holds, of one shape.)
        if isinstance(a, nt.NoneType):
            return lambda a, b: b
        if isinstance(b, nt.NoneType):
            return lambda a, b: a
        if isinstance(a, (nt.Array, nt.Optional)) and isinstance(b, (nt.Array, nt.Optional)):
            def into(a, b):
                if a is None:
                    return b
                if b is None:
                    return a
                x: Any = unwrap(a)  # type: ignore[call-arg,unused-ignore]
                x += unwrap(b)  # type: ignore[call-arg,unused-ignore]
                return x
            return into
        return None

    @overload(_nt_unwrap)
    def _unwrap(x):
        # (A closure's capture read from its slot, `native_closures`: optional where
        # closures that do not capture it meet; None there raises TypeError.)
        if isinstance(x, nt.Optional):
            return lambda x: unwrap(x)  # type: ignore[call-arg,unused-ignore]
        return lambda x: x

    @overload(_nt_element_sens_small)
    def _element_sens_small(d, x, index):
        # (`runtime.element_sens_small`: x a float64 array, index an element's ints.)
        if isinstance(d, nt.NoneType):
            return lambda d, x, index: None
        if isinstance(x, nt.Array) and isinstance(d, (nt.Float, nt.Optional)):
            def dense(d, x, index):
                if d is None:
                    return None
                out = np.zeros(x.shape)
                out[index] = d
                return out
            return dense
        return None

    @overload(_nt_unbroadcast)
    def _unbroadcast(d, x):
        if isinstance(d, nt.NoneType):
            return lambda d, x: None
        if isinstance(d, nt.Optional):
            return optional_first(_nt_unbroadcast)
        if number(x) and number(d):
            return lambda d, x: d
        if number(x) and isinstance(d, nt.Array):
            return lambda d, x: float(np.sum(d))
        if isinstance(x, nt.Array) and isinstance(d, nt.Array):
            if d.ndim == x.ndim:
                def same(d, x):
                    if d.shape != x.shape:
                        raise ValueError("unbroadcast without a native version")
                    return d
                return same
            if d.ndim == x.ndim + 1:
                def lead(d, x):
                    if d.shape[1:] != x.shape:
                        raise ValueError("unbroadcast without a native version")
                    return np.sum(d, axis=0)
                return lead
        return None

    @overload(_nt_broadcast_like)
    def _broadcast_like(d, x):
        """`runtime.broadcast_like`, the adjoint of `unbroadcast`: `d` given the shape of
        `x` (a new array where the shapes differ; Python's is a read-only view)."""
        if isinstance(d, nt.NoneType):
            return lambda d, x: None
        if isinstance(d, nt.Optional):
            return optional_first(_nt_broadcast_like)
        if number(x) and number(d):
            return lambda d, x: d
        if isinstance(x, nt.Array) and number(d):
            return lambda d, x: np.full(x.shape, d)
        if isinstance(x, nt.Array) and isinstance(d, nt.Array):
            if d.ndim == x.ndim:
                def same(d, x):
                    if d.shape == x.shape:
                        return d
                    return np.broadcast_to(d, x.shape).copy()
                return same
            return lambda d, x: np.broadcast_to(d, x.shape).copy()
        return None

    @overload(_nt_own)
    def _own(x):
        if isinstance(x, nt.Array):
            return lambda x: x.copy()
        if number(x):
            return lambda x: x
        return None

    @overload(_nt_to_structure)
    def _to_structure(sens, like):
        if isinstance(like, nt.Boolean) or \
                (isinstance(like, nt.Array) and isinstance(like.dtype, nt.Boolean)):
            return lambda sens, like: like  # (a bool: as it is, `runtime.to_structure`)
        if isinstance(sens, nt.Optional):
            def maybe(sens, like):  # (as `optional_first`, by this helper's names)
                if sens is None:
                    return _nt_to_structure(None, like)
                return _nt_to_structure(unwrap(sens), like)  # type: ignore[call-arg,unused-ignore]
            return maybe
        if isinstance(sens, nt.NoneType):
            if isinstance(like, nt.Float):
                return lambda sens, like: 0.0
            if isinstance(like, nt.Array) and isinstance(like.dtype, nt.Float):
                return lambda sens, like: np.zeros(like.shape, like.dtype)
            return None
        if isinstance(sens, (nt.Array, nt.Float)):
            return lambda sens, like: sens
        return None

    @overload(_nt_abs)
    def _abs(x):
        """The builtin `abs` by its argument's type: NumPy's `np.abs` for an array (what
        CPython's `abs` calls through `__abs__`; Numba's `abs` takes numbers only, and
        batched code applies it to arrays), the builtin for a number."""
        if isinstance(x, nt.Array):
            return lambda x: np.abs(x)
        return lambda x: abs(x)

    _register_container_tests(overload, nt)

    @overload(_nt_pow)
    def _pow(a, b):
        if isinstance(a, nt.Array) or isinstance(b, nt.Array):
            return lambda a, b: a ** b  # (NumPy's semantics, which Numba follows)
        if isinstance(a, nt.Integer) and isinstance(b, nt.Integer):
            def integers(a, b):
                if b < 0 or abs(float(a)) ** float(b) >= _INT_LIMIT:
                    raise OverflowError("an integer power beyond 64 bits")
                return a ** b
            return integers
        if number(a) and number(b):
            def floats(a, b):
                r = a ** b
                if (r != r and a == a and b == b) or (math.isinf(r) and math.isfinite(a)
                                                      and math.isfinite(b)):
                    raise ValueError("a power CPython computes otherwise")
                return r
            return floats
        return None

    @overload(_nt_sens_of)
    def _sens_of(d, like):
        if not isinstance(d, (nt.NoneType, nt.Optional)):
            return lambda d, like: d
        zero: Any
        if isinstance(like, nt.Float):
            zero = lambda like: 0.0  # noqa: E731
        elif isinstance(like, nt.Array) and isinstance(like.dtype, nt.Float):
            zero = lambda like: np.zeros(like.shape, like.dtype)  # noqa: E731
        else:
            return None
        from numba import njit

        make_zero = njit(zero)
        if isinstance(d, nt.NoneType):
            return lambda d, like: make_zero(like)

        def maybe(d, like):
            if d is None:
                return make_zero(like)
            return d
        return maybe

    @overload(_nt_getitem_sens)
    def _getitem_sens(d, x, index):
        if isinstance(d, nt.NoneType):
            return lambda d, x, index: None
        if isinstance(x, nt.Array) and isinstance(index, nt.Integer) and \
                isinstance(d, (nt.Array, nt.Float)):
            dtype: Any = x.dtype if isinstance(x.dtype, nt.Float) else nt.float64

            def scatter(d, x, index):
                out = np.zeros(x.shape, dtype)
                out[index] = d
                return out
            return scatter
        item = x.dtype if isinstance(x, nt.List) else None
        if isinstance(index, nt.Integer) and (
                isinstance(item, nt.Float) and isinstance(d, nt.Float) or
                isinstance(item, nt.Array) and isinstance(item.dtype, nt.Float) and
                isinstance(d, nt.Array) and d.dtype == item.dtype and d.ndim == item.ndim):
            # (`tuple_sens` of a list: the other items' sensitivities are their zeros
            # here, ZERO in the Python backend: the same sums.)
            def one(d, x, index):
                out = [_nt_zeros_of(v) for v in x]
                out[index] = d
                return out
            return one
        return None

    @overload(_nt_fdiv)
    def _fdiv(a, b):
        if number(a) and number(b):
            def divide(a, b):
                if b == 0:
                    raise ZeroDivisionError("the IEEE quotient comes from CPython")
                return a / b
            return divide
        return lambda a, b: a / b

    @overload(_nt_check_bound)
    def _check_bound(value, name, where):
        if isinstance(value, nt.NoneType):
            def unbound(value, name, where):
                raise UnboundLocalError("a variable is used before it is assigned")
            return unbound
        if isinstance(value, nt.Optional):
            def maybe(value, name, where):
                if value is None:
                    raise UnboundLocalError("a variable is used before it is assigned")
                return value
            return maybe
        return lambda value, name, where: value

    def plain(t: Any) -> bool:
        """Values the internal sensitivity form leaves as they are: numbers, arrays, and
        tuples of them (no None in them, which would be the symbolic zero)."""
        if isinstance(t, (nt.Array, nt.Float, nt.Integer)):
            return True
        if isinstance(t, nt.BaseTuple):
            return all(plain(x) for x in getattr(t, "types", ()))
        return False

    def updated(x, index, value):
        out = x.copy()
        out[index] = value
        return out

    @overload(_nt_index_update)
    def _index_update(x, index, value):
        if isinstance(x, (nt.Array, nt.List)):
            return updated
        return None

    @overload(_nt_index_update_inplace)
    def _index_update_inplace(x, index, value):
        if isinstance(x, nt.Array) and not x.mutable:
            return updated  # (a read-only array is copied, as by the Python backend)
        if isinstance(x, (nt.Array, nt.List)):
            def in_place(x, index, value):
                x[index] = value
                return x
            return in_place
        return None

    @overload(_nt_immutable_item)
    def _immutable_item(container, item):
        if isinstance(container, nt.List) and isinstance(item, (nt.Array, nt.List)):
            def refuse(container, item):
                raise TypeError("x[i] op= v on a list whose item is an array")
            return refuse
        return lambda container, item: item

    @overload(_nt_dense_sens)
    def _dense_sens(d):
        # (Sparse sensitivities are Python objects: in native code every one is dense.)
        if isinstance(d, (nt.NoneType, nt.Optional, nt.Array)) or number(d):
            return lambda d: d
        return None

    @overload(_nt_ones_like_output)
    def _ones_like_output(out):
        if number(out):
            return lambda out: 1.0
        if isinstance(out, nt.Array) and out.ndim > 0:
            return lambda out: np.ones_like(out)
        return None

    @overload(_nt_lift)
    def _lift(value):
        # (Data passes into derivative code as it is; a function would need its
        # J-callable, which native code does not have.)
        if isinstance(value, (nt.Array, nt.BaseTuple)) or number(value):
            return lambda value: value
        return None

    @overload(_nt_repeat_sens)
    def _repeat_sens(d, seq):
        # (Only where `isinstance(seq, (tuple, list))` holds, a branch Numba prunes for
        # numbers and arrays; a real sequence here is not lowered.)
        if isinstance(d, nt.NoneType):
            return lambda d, seq: None
        return None

    @register_jitable
    def summed_piece(indices, ds, k):
        """Whether indices[k] is the first place its index is given, and the sum of the
        pieces of every place it is given (as `scatter_sens` sums an index given twice)."""
        total = ds[k]
        for m in range(k):
            if indices[m] == indices[k]:
                return False, total
        for m in range(k + 1, len(indices)):
            if indices[m] == indices[k]:
                total = total + ds[m]
        return True, total

    def scatter_add(acc, x, indices, ds):
        """`scatter_add` for a float array x, int indices and pieces of one type: the
        pieces of an index given twice are summed first, as `scatter_sens` sums them."""
        if acc is None:
            out = np.zeros(x.shape, x.dtype)
        else:
            out = acc
        for k in range(len(indices)):
            first, total = summed_piece(indices, ds, k)
            if first:
                out[indices[k]] = out[indices[k]] + total
        return out

    def scatter_add_rows(acc, x, indices, ds):
        """`scatter_add` of arrays into the rows of x: each row summed in place, as
        `runtime.scatter_add` does (`acc[i] += d`), not into a new array per piece."""
        if acc is None:
            out = np.zeros(x.shape, x.dtype)
        else:
            out = acc
        for k in range(len(indices)):
            first, total = summed_piece(indices, ds, k)
            if first:
                row = out[indices[k]]
                np.add(row, total, row)  # (Numba 0.68 mistypes `+=` for some arrays)
        return out

    @register_jitable
    def summed_optional(indices, ds, k):
        """`summed_piece` for pieces that may be None (ZERO: a branch that gave this
        index no sensitivity, where branches meet): whether indices[k] is the first place
        its index is given, the sum of its pieces that are numbers, and whether any is."""
        for m in range(k):
            if indices[m] == indices[k]:
                return False, 0.0, False
        total = 0.0
        some = False
        for m in range(k, len(indices)):
            if m == k or indices[m] == indices[k]:
                d = ds[m]
                if d is not None:
                    total = unwrap(d) if not some else total + unwrap(d)  # type: ignore[call-arg,unused-ignore]
                    some = True
        return True, total, some

    def scatter_add_optional(acc, x, indices, ds):
        """`scatter_add` of pieces that may be None, each a number: None adds nothing,
        as `runtime.scatter_add` skips ZERO."""
        if acc is None:
            out = np.zeros(x.shape, x.dtype)
        else:
            out = acc
        for k in range(len(indices)):
            first, total, some = summed_optional(indices, ds, k)
            if first and some:
                out[indices[k]] = out[indices[k]] + total
        return out

    def scatter_add_types(acc, x, indices, ds):
        if not (isinstance(x, nt.Array) and isinstance(x.dtype, nt.Float) and
                isinstance(indices, nt.UniTuple) and isinstance(ds, nt.UniTuple) and
                len(ds) == len(indices)):
            return None
        piece = ds.dtype
        if isinstance(piece, nt.Optional):
            # (a piece from where branches meet, one of which gave it no sensitivity)
            base = acc.type if isinstance(acc, nt.Optional) else acc
            if isinstance(piece.type, nt.Float) and (
                    isinstance(base, nt.NoneType) or isinstance(base, nt.Array) and
                    base.ndim == x.ndim and base.dtype == x.dtype) and (
                    isinstance(indices.dtype, nt.Integer) and x.ndim == 1 or
                    isinstance(indices.dtype, nt.UniTuple) and
                    isinstance(indices.dtype.dtype, nt.Integer) and
                    len(indices.dtype) == x.ndim):
                return scatter_add_optional
            return None
        index = indices.dtype
        if isinstance(index, nt.UniTuple) and isinstance(index.dtype, nt.Integer) and \
                len(index) == x.ndim and isinstance(piece, nt.Float):
            # (an element's ints: the pieces are numbers, summed as one index's)
            base = acc.type if isinstance(acc, nt.Optional) else acc
            if isinstance(base, nt.NoneType) or isinstance(base, nt.Array) and \
                    base.ndim == x.ndim and base.dtype == x.dtype:
                return scatter_add
            return None
        if not isinstance(index, nt.Integer):
            return None
        if not (isinstance(piece, nt.Float) and x.ndim == 1 or isinstance(piece, nt.Array)
                and isinstance(piece.dtype, nt.Float) and piece.ndim == x.ndim - 1):
            return None
        base = acc.type if isinstance(acc, nt.Optional) else acc
        if not (isinstance(base, nt.NoneType) or isinstance(base, nt.Array) and
                base.ndim == x.ndim and base.dtype == x.dtype):
            return None
        return scatter_add_rows if isinstance(piece, nt.Array) else scatter_add

    def scatter_add_list(acc, x, indices, ds):
        """`scatter_add` for a list x of float arrays: the sensitivity of an element no
        piece reaches is its zeros (ZERO in the Python backend: the same sums)."""
        if acc is None:
            out = [_nt_zeros_of(v) for v in x]
        else:
            out = acc
        for k in range(len(indices)):
            first, total = summed_piece(indices, ds, k)
            if first:
                out[indices[k]] = out[indices[k]] + total  # (a new array: d is not kept)
        return out

    def scatter_add_list_types(acc, x, indices, ds):
        item = x.dtype if isinstance(x, nt.List) else None
        if not (isinstance(item, nt.Array) and isinstance(item.dtype, nt.Float) and
                isinstance(indices, nt.UniTuple) and isinstance(indices.dtype, nt.Integer)
                and isinstance(ds, nt.UniTuple) and len(ds) == len(indices) and
                isinstance(ds.dtype, nt.Array) and ds.dtype.dtype == item.dtype and
                ds.dtype.ndim == item.ndim):
            return None
        base = acc.type if isinstance(acc, nt.Optional) else acc
        if not (isinstance(base, nt.NoneType) or isinstance(base, nt.List) and
                base.dtype == item):
            return None
        return scatter_add_list

    def scatter_add_any(acc, x, indices, ds):
        return scatter_add_types(acc, x, indices, ds) or \
            scatter_add_list_types(acc, x, indices, ds)

    overload(_nt_scatter_add)(scatter_add_any)
    overload(_nt_scatter_add_known)(scatter_add_any)

    def scatter_onto_any(acc, x, indices, ds):
        """`scatter_onto`: `scatter_add` into a copy of acc, which may be shared (a
        backward loop body's accumulator, in a checkpointed loop)."""
        if scatter_add_any(acc, x, indices, ds) is None:
            return None
        if isinstance(acc, nt.NoneType):
            return lambda acc, x, indices, ds: _nt_scatter_add(acc, x, indices, ds)
        base = acc.type if isinstance(acc, nt.Optional) else acc
        if isinstance(base, nt.List):
            def onto_list(acc, x, indices, ds):
                if acc is None:
                    return _nt_scatter_add(None, x, indices, ds)
                # (a new list: scatter_add replaces items, it does not change them)
                return _nt_scatter_add(list(unwrap(acc)), x, indices, ds)  # type: ignore[call-arg,unused-ignore]
            return onto_list

        def onto(acc, x, indices, ds):
            if acc is None:
                return _nt_scatter_add(None, x, indices, ds)
            return _nt_scatter_add(unwrap(acc).copy(), x, indices, ds)  # type: ignore[call-arg,unused-ignore]
        return onto

    overload(_nt_scatter_onto)(scatter_onto_any)
    overload(_nt_scatter_onto_known)(scatter_onto_any)

    # (`native_loops.lower_list_sens`: a sensitivity of k items taken apart, and one of
    # two joined sequences split.)
    @overload(_nt_items_of, prefer_literal=True)
    def _items_of(d, k):
        if not isinstance(k, nt.IntegerLiteral):
            return None
        count = k.literal_value
        nones = "(" + "None, " * count + ")"
        if isinstance(d, nt.NoneType):
            return _made(f"def items(d, k):\n    return {nones}\n")
        base = d.type if isinstance(d, nt.Optional) else d
        if isinstance(base, nt.BaseTuple) and len(base) == count:
            return _made(f"def items(d, k):\n    if d is None:\n        return {nones}\n"
                         "    return d\n")
        if isinstance(base, nt.List):
            items = "".join(f"d[{i}], " for i in range(count))
            return _made(f"def items(d, k):\n    if d is None:\n        return {nones}\n"
                         f"    if len(d) != {count}:\n"
                         "        raise ValueError('a sensitivity of another length')\n"
                         f"    return ({items})\n")
        return None

    @overload(_nt_split_at)
    def _split_at(d, n):
        if isinstance(d, nt.NoneType):
            return lambda d, n: (None, None)
        if isinstance(d, nt.Optional):
            def maybe(d, n):
                if d is None:
                    return (None, None)
                return (d[:n], d[n:])
            return maybe
        if isinstance(d, (nt.List, nt.Array)):
            return lambda d, n: (d[:n], d[n:])
        return None

    @overload(_nt_split_items, prefer_literal=True)
    def _split_items(d, n, k):
        # (`native_loops.lower_split_items`: `_nt_split_at` whose tail is taken apart.)
        if not isinstance(k, nt.IntegerLiteral):
            return None
        count = k.literal_value
        nones = "(" + "None, " * count + ")"
        base = d.type if isinstance(d, nt.Optional) else d
        if isinstance(d, nt.NoneType):
            return _made(f"def items(d, n, k):\n    return (None, {nones})\n")
        if not isinstance(base, nt.List):
            return None
        items = "".join(f"d[n + {i}], " for i in range(count))
        return _made(f"def items(d, n, k):\n    if d is None:\n        return (None, {nones})\n"
                     f"    if n < 0 or len(d) != n + {count}:\n"
                     "        raise ValueError('a sensitivity of another length')\n"
                     f"    return (d[:n], ({items}))\n")

    # (`native_loops.lower_item_sums`: `_nt_item_sens` is `getitem_sens` kept as its
    # pieces where `_nt_scatter_into` can add them in place, the dense array otherwise.)
    def one_item(d, x, index):
        return isinstance(x, nt.Array) and isinstance(x.dtype, nt.Float) and \
            isinstance(index, nt.Integer) and (
                isinstance(d, nt.Float) if x.ndim == 1 else
                isinstance(d, nt.Array) and d.ndim == x.ndim - 1)

    @overload(_nt_item_sens)
    def _item_sens(d, x, index):
        if isinstance(d, nt.NoneType):
            return lambda d, x, index: None
        if one_item(d, x, index):
            return lambda d, x, index: (d, x, index)
        return lambda d, x, index: _nt_getitem_sens(d, x, index)

    @overload(_nt_scatter_into)
    def _scatter_into(acc, item):
        if isinstance(item, nt.NoneType):
            return lambda acc, item: acc
        pieces: tuple[Any, ...] = getattr(item, "types", ())
        if not (isinstance(item, nt.BaseTuple) and len(pieces) == 3 and one_item(*pieces)):
            return lambda acc, item: _nt_gadd(acc, item)
        dtype: Any = pieces[1].dtype

        def fresh(acc, item):
            d, x, index = item
            out = np.zeros(x.shape, dtype)
            out[index] = d
            return out
        if isinstance(acc, nt.NoneType):
            return fresh

        def add(acc, item):
            d, x, index = item
            if acc is None:
                out = np.zeros(x.shape, dtype)
                out[index] = d
                return out
            acc[index] = acc[index] + d  # (not +=: Numba 0.68 mistypes it for some arrays)
            return acc
        return add

    @overload(_nt_zeros_of)
    def _zeros_of(v):
        if isinstance(v, nt.Float):
            return lambda v: 0.0
        if isinstance(v, nt.Array) and isinstance(v.dtype, nt.Float):
            return lambda v: np.zeros_like(v)
        return None

    @overload(_nt_zeros_for)
    def _zeros_for(x):
        if isinstance(x, nt.Array) and isinstance(x.dtype, nt.Float):
            return lambda x: np.zeros(x.shape, x.dtype)
        return lambda x: None  # (the symbolic zero, as before the rewrite)

    @overload(_nt_add_into)
    def _add_into(acc, d):
        if isinstance(d, nt.NoneType):
            return lambda acc, d: acc
        if not (isinstance(d, nt.Array) and isinstance(d.dtype, nt.Float)):
            return lambda acc, d: _nt_gadd(acc, d)
        if isinstance(acc, nt.NoneType):
            return lambda acc, d: d.copy()  # (a copy: d itself may be seen elsewhere)
        base = acc.type if isinstance(acc, nt.Optional) else acc
        if not (isinstance(base, nt.Array) and base.ndim == d.ndim and
                base.dtype == d.dtype):
            return lambda acc, d: _nt_gadd(acc, d)

        def add(acc, d):
            if acc is None:
                return d.copy()
            if acc.shape != d.shape:
                return acc + d  # (NumPy's broadcasting, as gadd)
            np.add(acc, d, acc)  # (in place; Numba 0.68 mistypes `+=` for some arrays)
            return acc
        return add

    @overload(_nt_add_element)
    def _add_element(acc, d, x, index):
        # (`native_records.accumulate_in_place`: `gadd_owned(acc, element_sens_small(d,
        # x, index))`, acc None or an array no one else holds, of x's shape.)
        if isinstance(d, nt.NoneType):
            return lambda acc, d, x, index: acc
        if not (isinstance(x, nt.Array) and isinstance(x.dtype, nt.Float) and
                isinstance(d, (nt.Float, nt.Optional))):
            return None
        if isinstance(acc, nt.NoneType):
            return lambda acc, d, x, index: _nt_element_sens_small(d, x, index)
        base = acc.type if isinstance(acc, nt.Optional) else acc
        if not (isinstance(base, nt.Array) and base.ndim == x.ndim and base.dtype == x.dtype):
            return None
        if isinstance(acc, nt.Array):
            # (an array in, the same array out: a recursion passing it on keeps one
            # signature, which Numba can cache)
            def into(acc, d, x, index):
                if d is not None:
                    acc[index] += d
                return acc
            return into

        def add(acc, d, x, index):
            if d is None:
                return acc
            if acc is None:
                return _nt_element_sens_small(d, x, index)
            out: Any = unwrap(acc)  # type: ignore[call-arg,unused-ignore]
            out[index] += d
            return out
        return add

    # (`native_checkpoint`: the bytes of a checkpointed loop's saved values, counted as
    # `runtime.saved_bytes` counts them, to depth 8; `depth` is a literal.)
    @overload(_nt_saved_bytes, prefer_literal=True)
    def _saved_bytes(value, depth):
        if not isinstance(depth, nt.IntegerLiteral):
            return None
        inner = depth.literal_value + 1
        known = {"_nt_saved_bytes": _nt_saved_bytes, "unwrap": unwrap}
        if isinstance(value, nt.Array):
            return lambda value, depth: value.nbytes + 112
        if isinstance(value, nt.Optional):
            return _made("def items(value, depth):\n    if value is None:\n        return 32\n"
                         f"    return _nt_saved_bytes(unwrap(value), {inner - 1})\n", known)
        if isinstance(value, nt.BaseTuple) and inner <= 8:
            parts = "".join(f" + _nt_saved_bytes(value[{i}], {inner})"
                            for i in range(len(value)))
            return _made(f"def items(value, depth):\n    return {56 + 8 * len(value)}{parts}\n",
                         known)
        if isinstance(value, nt.List) and inner <= 8:
            return _made("def items(value, depth):\n    total = 56 + 8 * len(value)\n"
                         f"    for v in value:\n        total += _nt_saved_bytes(v, {inner})\n"
                         "    return total\n", known)
        return lambda value, depth: 32

    @overload(_nt_from_structure)
    def _from_structure(value):
        if isinstance(value, nt.NoneType) or plain(value):
            return lambda value: value
        return None

    @overload(_nt_check_scalar_output)
    def _check_scalar_output(out):
        if isinstance(out, (nt.Float, nt.Integer)) and not isinstance(out, nt.Boolean):
            return lambda out: out
        return None

    @overload(_nt_sens_index, prefer_literal=True)
    def _sens_index(dd, index):
        if isinstance(dd, nt.NoneType):
            return lambda dd, index: None
        if isinstance(dd, (nt.BaseTuple, nt.Array)) and isinstance(index, nt.Integer):
            return lambda dd, index: dd[index]
        return None

    @overload(_nt_reshape_like)
    def _reshape_like(d, x):
        if isinstance(d, nt.NoneType):
            return lambda d, x: None
        if isinstance(x, nt.Float) and isinstance(d, (nt.Float, nt.Array)):
            return lambda d, x: float(np.sum(d))
        if isinstance(x, nt.Array) and x.ndim > 0 and isinstance(d, nt.Array):
            return lambda d, x: np.reshape(np.ascontiguousarray(d), x.shape)
        return None

    @overload(_nt_expand_reduced)
    def _expand_reduced(d, x, axis, keepdims):
        if isinstance(d, nt.NoneType):
            return lambda d, x, axis, keepdims: None
        if isinstance(x, nt.Array) and isinstance(axis, nt.NoneType) and \
                isinstance(d, nt.Float):
            return lambda d, x, axis, keepdims: np.full(x.shape, d)
        return None


def _register_container_tests(overload: Any, nt: Any) -> None:
    """The overloads `_container_test` calls: True or False by the argument's type."""
    def by_type(classes: tuple[Any, ...]) -> Any:
        def test(x):
            answer = isinstance(x, classes)
            return lambda x: answer
        return test

    overload(_nt_is_tuple)(by_type((nt.BaseTuple,)))
    overload(_nt_is_list)(by_type((nt.List, nt.ListType)))
    overload(_nt_is_sequence)(by_type((nt.BaseTuple, nt.List, nt.ListType)))


def _made(source: str, namespace: dict[str, Any] | None = None) -> Any:
    """The function `items` defined by `source` (an overload's implementation for a
    number of items known when typing), with the globals `namespace`."""
    namespace = dict(namespace or {})
    exec(source, namespace)  # noqa: S102 - text made above from an int
    return namespace["items"]


# A statement of Numba's typed IR as its annotation prints it (`str(type_annotation)`,
# which Numba also keeps for code loaded from its cache): `name = value  :: type`.
# (With the source at hand, each printed as a comment under its line, `# --- LINE n ---`.)
_TYPED_ASSIGN = re.compile(r"^\s*#?\s+(\S+) = (.*)  :: (.*)$")
_TYPED_LINE = re.compile(r"--- LINE (\d+) ---")
_LITERAL_TYPE = re.compile(r"Literal\[(\w+)\]\([^()]*\)")
_UNITUPLE = re.compile(r"UniTuple\(([^()]*) x (\d+)\)")
_NUMBER_LEAF = re.compile(r"\b(bool|u?int\d+|float\d+)\b")


def _leaves(numba_type: str) -> list[str]:
    """The number types in a Numba type's text, in order (a literal as its type's,
    `UniTuple(T x n)` as n times T's)."""
    text = _LITERAL_TYPE.sub(lambda m: {"int": "int64", "float": "float64"}.get(
        m.group(1), m.group(1)), numba_type)
    while (found := _UNITUPLE.search(text)) is not None:
        text = text[:found.start()] + "Tuple(" + ", ".join(
            [found.group(1)] * int(found.group(2))) + ")" + text[found.end():]
    return _NUMBER_LEAF.findall(text)


def unified_types(annotation: str) -> tuple[str, int | None] | None:
    """Why Numba's typed code (`annotation`: its text) gives a value one type where
    CPython keeps each path's, or None: a variable bound to a bool on one path and to
    an int or a float on another (`a and b` for a bool a and an int b, `x if c else 1`
    for a bool x) becomes a number (1 for True), an int on one and a float on another a
    float, which CPython would not give on the calls where that path runs (the first
    call's check compares one result). Seen where a value is copied into a variable of
    another type, `v = w` or `v = cast(value=w)`. With the reason, the line of the
    module where it is copied, where the annotation says."""
    types: dict[str, str] = {}
    copies: list[tuple[str, str, int | None]] = []
    at: int | None = None
    for line in annotation.splitlines():
        m = _TYPED_ASSIGN.match(line)
        if m is None:
            if (n := _TYPED_LINE.search(line)) is not None:
                at = int(n.group(1))
            continue
        name, value, numba_type = m.groups()
        types[name] = _value_type(value, numba_type)
        source = value[len("cast(value="):-1] if value.startswith("cast(value=") and \
            value.endswith(")") else value
        if re.fullmatch(r"[\w.$]+", source):
            copies.append((source, name, at))
    for source, target, where in copies:
        if source not in types:
            continue
        a, b = _leaves(types[source]), _leaves(types[target])
        if len(a) != len(b):
            continue
        for x, y in zip(a, b, strict=True):
            if x == "bool" and y != "bool":
                return ("a value that is a bool on one path and a number on another "
                        f"(Numba gives it one type, {y}, so True would come back as 1); "
                        "write `bool(...)` or `int(...)` around it to run natively", where)
            if x.startswith(("int", "uint")) and y.startswith("float"):
                return ("a value that is an int on one path and a float on another "
                        "(Numba gives it one type, a float, so 1 would come back as "
                        "1.0); write the int as a float (`1.0`) to run natively", where)
    return None


def _value_type(value: str, numba_type: str) -> str:
    """The type of the value an annotated line binds: for a call (`v = call f(...)`,
    annotated with the function's signature, `(float64,) -> bool`), its result's."""
    if value.startswith("call ") and " -> " in numba_type:
        return numba_type.rsplit(" -> ", 1)[1]
    return numba_type


def refuse_mixed_selects(tree: ast.Module) -> None:
    """Raise `_Refused` (with the line) where a value is a bool on one path and a number
    on another: `not a or b`, `c if c else 0` (a conditional expression, an `and`/`or`,
    or the two branches of an `if` assigning one name), or an int on one and a float on
    the other (`1 if c else 2.5`). CPython keeps each path's type; Numba gives the value
    one type (an int64 for a bool and an int, a float64 for an int and a float), so
    native code would return 1 for True or 1.0 for 1, on calls the first call's check
    (which compares one result) does not see."""
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef):
            continue
        aliases = _numpy_aliases(fn)
        bools = _bool_names(fn, aliases)
        for node in ast.walk(fn):
            pairs: list[tuple[ast.expr, ast.expr]] = []
            if isinstance(node, ast.IfExp):
                pairs.append((node.body, node.orelse))
            elif isinstance(node, ast.If) and node.orelse:
                then, other = _branch_bindings(node.body), _branch_bindings(node.orelse)
                pairs.extend((then[name], other[name]) for name in then if name in other)
            for a, b in pairs:
                reason = _mixed(a, b, bools, aliases)
                if reason is not None:
                    raise _Refused(reason, getattr(a, "lineno", None) or
                                   getattr(node, "lineno", None))


def _mixed(a: ast.expr, b: ast.expr, bools: set[str], aliases: dict[str, str]
           ) -> str | None:
    """Why the two values a path may give cannot share one native type, or None."""
    if _is_bool(a, bools, aliases) != _is_bool(b, bools, aliases):
        return ("a value that is a bool on one path and may be a number on another "
                "(`and`, `or` or a conditional expression mixing a test with a number): "
                "Numba gives it one type; write `bool(...)` or `int(...)` around it to "
                "run natively")
    ta, tb = _literal_type(a), _literal_type(b)
    if ta is not None and tb is not None and ta is not tb:
        return ("a value that is an int on one path and a float on another: Numba gives "
                "it one type; write the int as a float (`1.0`) to run natively")
    return None


def _literal_type(e: ast.expr) -> type | None:
    """int or float for a number written as a literal (or negated), else None."""
    if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
        e = e.operand
    if isinstance(e, ast.Constant) and type(e.value) in (int, float):
        return type(e.value)
    return None


# (Builtins that always return a bool, as generated code calls them.)
_BOOL_CALLS = ("bool", "isinstance")


def _is_bool(e: ast.expr, bools: set[str], aliases: dict[str, str]) -> bool:
    """Whether `e` is always a bool (or, for arrays, a comparison's result; `aliases`:
    the names bound once to `np.name`, by the names they stand for)."""
    if isinstance(e, ast.Compare) or isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.Not):
        return True
    if isinstance(e, ast.Constant):
        return type(e.value) is bool
    if isinstance(e, ast.Name):
        return e.id in bools
    if isinstance(e, ast.BoolOp):
        return all(_is_bool(v, bools, aliases) for v in e.values)
    if isinstance(e, ast.IfExp):
        return _is_bool(e.body, bools, aliases) and _is_bool(e.orelse, bools, aliases)
    if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in _BOOL_CALLS:
        return True
    if isinstance(e, ast.Call):
        name = _numpy_name(e.func) or \
            (aliases.get(e.func.id) if isinstance(e.func, ast.Name) else None)
        if e.keywords:
            return _bool_array(name, e, bools, aliases)
        if name == "where" and len(e.args) == 3:  # (a select between bools: vmap's `or`)
            return all(_is_bool(v, bools, aliases) for v in e.args[1:])
        return _bool_ufunc(name) or _bool_array(name, e, bools, aliases)
    return False


def _bool_array(name: str | None, e: ast.Call, bools: set[str],
                aliases: dict[str, str]) -> bool:
    """Whether `e`, a call of `np.name`, makes an array of bools: `np.full(shape, v)`
    (`np.full_like(x, v)`) of a bool `v` without another dtype, or a maker of arrays
    given `dtype=bool` (`np.ones(n, dtype=bool)`; vmap's masks are made so)."""
    dtype = next((k.value for k in e.keywords if k.arg == "dtype"), None)
    if dtype is not None:
        return name in _ARRAY_MAKERS and (isinstance(dtype, ast.Name) and dtype.id == "bool"
                                          or _numpy_name(dtype) == "bool_")
    if name in ("full", "full_like") and len(e.args) == 2 and not e.keywords:
        return _is_bool(e.args[1], bools, aliases)
    return False


# (NumPy's functions that make an array of a given `dtype=` from a shape or an array.)
_ARRAY_MAKERS = ("full", "full_like", "ones", "ones_like", "zeros", "zeros_like", "empty",
                 "empty_like", "array", "asarray")


def _bool_ufunc(name: str | None) -> bool:
    """Whether `np.name` is a ufunc whose every loop but the object one gives a bool
    (`np.logical_and`, `np.isnan`, `np.greater`: NumPy's own type table says so), so
    its result is a bool or a bool array whatever numbers or arrays it is given."""
    ufunc = getattr(np, name, None) if name is not None else None
    if not isinstance(ufunc, np.ufunc):
        return False
    results = {t.split("->")[1] for t in ufunc.types if "O" not in t}
    return results == {"?"}


def _numpy_aliases(fn: ast.FunctionDef) -> dict[str, str]:
    """The names `fn` binds once, to `np.name` (`_where = np.where`), by `name`."""
    bindings: dict[str, int] = {}
    aliases: dict[str, str] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bindings[node.id] = bindings.get(node.id, 0) + 1
        elif isinstance(node, ast.arg):
            bindings[node.arg] = bindings.get(node.arg, 0) + 1
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name) and \
                (name := _numpy_name(node.value)) is not None:
            aliases[node.targets[0].id] = name
    return {k: v for k, v in aliases.items() if bindings.get(k) == 1}


def _bool_names(fn: ast.FunctionDef, aliases: dict[str, str]) -> set[str]:
    """The names that every binding in `fn` binds to a bool (by `_is_bool`, to a fixed
    point); a parameter, a loop target or an unpacked item is not known to be one."""
    values: dict[str, list[ast.expr | None]] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.arg):
            values.setdefault(node.arg, []).append(None)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                for name, value in _bound(target, node.value):
                    values.setdefault(name, []).append(value)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.comprehension,
                               ast.NamedExpr)):
            for bound in ast.walk(node.target):
                if isinstance(bound, ast.Name):
                    values.setdefault(bound.id, []).append(None)
    bools = {name for name, vs in values.items() if all(v is not None for v in vs)}
    while True:
        kept = {name for name in bools if all(
            v is not None and _is_bool(v, bools, aliases) for v in values[name])}
        if kept == bools:
            return bools
        bools = kept


def _bound(target: ast.expr, value: ast.expr | None) -> list[tuple[str, ast.expr | None]]:
    """The (name, value) pairs `target = value` binds (value None where unknown)."""
    if isinstance(target, ast.Name):
        return [(target.id, value)]
    if isinstance(target, (ast.Tuple, ast.List)):
        items = value.elts if isinstance(value, (ast.Tuple, ast.List)) and \
            len(value.elts) == len(target.elts) else [None] * len(target.elts)
        return [pair for t, v in zip(target.elts, items, strict=True) for pair in _bound(t, v)]
    return [(n.id, None) for n in ast.walk(target) if isinstance(n, ast.Name)]


def _branch_bindings(body: list[ast.stmt]) -> dict[str, ast.expr]:
    """The values a branch's own statements last bind to names (`v = ...`,
    `a, b = x, y`), where known."""
    found: dict[str, ast.expr] = {}
    for stmt in body:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                for name, value in _bound(target, stmt.value):
                    if value is None:
                        found.pop(name, None)
                    else:
                        found[name] = value
    return found



def lift_returned_closures(tree: ast.Module) -> int:
    """Lambda-lift a backpropagator that a function returns and its callers only call:
    `def J(...): ...; def B(d, *, a=a, b=b): body; ...; return v, B` where every call
    `t = J(...)` is used only as `t[0]` and `t[1](args)`. `J` then returns `(v, (a, b))`
    (the captures, evaluated where the `def` ran) and the calls become `J__B(args,
    t[1])`, a function of the module that unpacks them: Numba compiles no closure that
    escapes the function making it. (The derivative of a call of `tl.checkpoint(f)`
    runs `J_f` again in the backward pass and calls its backpropagator at once.) Not
    where `B` reads another local of `J` than its captures, nests a function, or its
    value goes anywhere else (stored, passed on: the derivative of a recursion saves the
    callees' backpropagators on its stack, a type that would contain itself). Returns how
    many were lifted."""
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    parents = _parents(tree)
    done = 0
    for j in list(functions.values()):
        nested = [n for n in ast.walk(j) if isinstance(n, (ast.FunctionDef, ast.Lambda)) and
                  n is not j]
        if len(nested) != 1 or not isinstance(nested[0], ast.FunctionDef) or \
                nested[0] not in j.body:
            continue
        b = nested[0]
        args = b.args
        if args.vararg or args.kwarg or args.defaults or args.posonlyargs or not all(
                isinstance(d, ast.Name) and d.id == a.arg
                for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)):
            continue
        captures = [a.arg for a in args.kwonlyargs]
        in_b = {id(m) for m in ast.walk(b)}
        mine = {a.arg for a in args.args} | set(captures) | {
            n.id for n in ast.walk(b) if isinstance(n, ast.Name) and
            not isinstance(n.ctx, ast.Load)}
        j_locals = {a.arg for a in j.args.args} | {
            n.id for n in ast.walk(j) if isinstance(n, ast.Name) and
            not isinstance(n.ctx, ast.Load) and id(n) not in in_b}
        if any(isinstance(n, ast.Name) and n.id in j_locals and n.id not in mine
               for n in ast.walk(b)):
            continue  # (it reads a local of J it does not capture)
        uses = [n for n in ast.walk(j) if _is_named(n, b.name) and id(n) not in in_b]
        if not uses or not all(
                isinstance(parents.get(id(n)), ast.Tuple) and
                len(parents[id(n)].elts) == 2 and  # type: ignore[attr-defined]
                parents[id(n)].elts[1] is n and  # type: ignore[attr-defined]
                isinstance(parents.get(id(parents[id(n)])), ast.Return) for n in uses):
            continue
        calls = _direct_calls(tree, j.name, parents)
        if calls is None:
            continue
        lifted = f"{j.name}__{b.name}"
        if lifted in functions:
            continue
        load = ast.Load()
        pack = ast.Assign([ast.Name(b.name, ast.Store())],
                          ast.Tuple([ast.Name(c, load) for c in captures], load))
        j.body[j.body.index(b)] = ast.copy_location(pack, b)
        unpack: list[ast.stmt] = []
        if captures:
            unpack = [ast.copy_location(ast.Assign(
                [ast.Tuple([ast.Name(c, ast.Store()) for c in captures], ast.Store())],
                ast.Name("_nt_captures", load)), b.body[0])]
        function = ast.FunctionDef(
            name=lifted, args=ast.arguments(
                posonlyargs=[], args=[*args.args, ast.arg("_nt_captures")], vararg=None,
                kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]),
            body=unpack + b.body, decorator_list=[], returns=None)
        if sys.version_info >= (3, 12):
            setattr(function, "type_params", [])  # noqa: B010 - (a field since 3.12)
        tree.body.insert(tree.body.index(j) + 1, ast.copy_location(function, b))
        functions[lifted] = function
        for call in calls:
            callee = call.func
            call.func = ast.copy_location(ast.Name(lifted, load), callee)
            call.args = [*call.args, callee]
        done += 1
    return done


def _is_named(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _direct_calls(tree: ast.Module, name: str, parents: dict[int, ast.AST]
                  ) -> list[ast.Call] | None:
    """The calls `t[1](...)` of the backpropagators that `name` returns, where every call
    of `name` in the module is `t = name(...)` with `t` (bound only there, in a function
    that nests none naming it) read only as `t[0]` and `t[1](...)`; None otherwise."""
    out: list[ast.Call] = []
    for node in ast.walk(tree):
        if not _is_named(node, name) or isinstance(node, ast.FunctionDef):
            continue
        call = parents.get(id(node))
        bind = parents.get(id(call)) if call is not None else None
        if not (isinstance(call, ast.Call) and call.func is node and
                isinstance(bind, ast.Assign) and len(bind.targets) == 1 and
                isinstance(bind.targets[0], ast.Name)):
            return None
        t = bind.targets[0].id
        scope = parents.get(id(bind))
        while scope is not None and not isinstance(scope, ast.FunctionDef):
            scope = parents.get(id(scope))
        if scope is None:
            return None
        names = [n for n in ast.walk(scope) if _is_named(n, t)]
        if any(isinstance(n, (ast.FunctionDef, ast.Lambda)) and n is not scope and
               any(_is_named(m, t) for m in ast.walk(n)) for n in ast.walk(scope)):
            return None
        for n in names:
            if n is bind.targets[0]:
                continue
            item = parents.get(id(n))
            if not (isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and
                    isinstance(item, ast.Subscript) and item.value is n and
                    isinstance(item.slice, ast.Constant) and item.slice.value in (0, 1) and
                    type(item.slice.value) is int):
                return None
            if item.slice.value == 1:
                use = parents.get(id(item))
                if not (isinstance(use, ast.Call) and use.func is item and
                        not use.keywords and
                        not any(isinstance(a, ast.Starred) for a in use.args)):
                    return None
                out.append(use)
    return out


def lower_source(source: str, namespace: dict[str, Any] | None = None,
                 root: str | None = None) -> tuple[ast.Module, set[str]]:
    """The generated module `source` rewritten for Numba, and the `math` functions it
    checks; raises `_Refused` (with the line) for a construct that is not lowered.
    `root`: the program's entry (by default the module's first function)."""
    tree = ast.parse(source)
    if root is None:
        root = next((n.name for n in tree.body if isinstance(n, ast.FunctionDef)), None)
    try:
        lower_checkpointed_loops(tree)
    except Unlowered as unlowered:
        raise _Refused(unlowered.reason, unlowered.line) from None
    if (generic := generic_select(tree)) is not None:
        raise _Refused(generic[0], generic[1][0], generic[1])
    refuse_mixed_selects(tree)
    lower_flat_comprehensions(tree)
    _, closures = lift_branch_closures(tree)
    _, left = lower_recursive_records(tree)
    if left:
        node, why = left[0]
        if closures:  # (the records keep closures: say which, and why each stays one)
            closure, reason = closures[0]
            why = f"{why}: {reason}"
        raise _Refused(why, getattr(node, "lineno", None))
    lift_returned_closures(tree)
    lower_linked_stacks(tree)
    lower_item_sums(tree)
    lower_list_growth(tree)
    lower_saved_lengths(tree)
    lower_list_sens(tree)
    lower_split_items(tree)
    lowering = _Lowering(namespace)
    tree = lowering.visit(tree)
    lower_branch_selects(tree)
    accumulate_recursive_sens(tree)
    lower_nested_sums(tree)
    lower_int_lists(tree, root)
    share_item_lists(tree)
    recompute_saved_items(tree)
    lower_affine_loops(tree)
    give_back_nothing(tree, root)
    drop_uncalled_functions(tree)
    ast.fix_missing_locations(tree)
    return tree, lowering.math


def drop_uncalled_functions(tree: ast.Module) -> int:
    """Replace by None each function of the module that is an item of a tuple (a
    backpropagator paired with its value) where the module calls no function through a
    value: such a function is never called. Numba does not cache code that uses a
    compiled function as a value (its "dynamic globals"); the LSTM's gradient pairs each
    item of a comprehension over data with `B_comprehension` and never calls it. Returns
    how many were replaced."""
    nodes = list(ast.walk(tree))
    functions = {n.name for n in nodes if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    # Every name the module binds, and the values of the plain `name = value` bindings.
    bound: dict[str, list[ast.expr | None]] = {}
    for node in nodes:
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.setdefault(node.id, [])
        elif isinstance(node, ast.arg):
            bound.setdefault(node.arg, []).append(None)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound.setdefault((alias.asname or alias.name).split(".")[0], []).append(None)
    for node in nodes:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    bound[target.id].append(node.value)
                else:  # (unpacked, or an item or attribute: a value of unknown origin)
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name) and name.id in bound:
                            bound[name.id].append(None)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.comprehension,
                               ast.NamedExpr, ast.withitem)):
            where = node.optional_vars if isinstance(node, ast.withitem) else node.target
            for name in ast.walk(where) if where is not None else ():
                if isinstance(name, ast.Name) and not isinstance(name.ctx, ast.Load):
                    bound[name.id].append(None)

    def known(name: str) -> bool:
        """Whether a call of `name` calls a function the module names: one of its
        functions, a global or builtin, or a local bound only to an attribute (`np.sum`,
        `stack.append`) or to such a global."""
        if name not in bound:
            return True  # (a global, a builtin, or a function of the module)
        values = bound[name]
        if name in functions:
            return not values
        return bool(values) and all(
            isinstance(v, ast.Attribute) or
            isinstance(v, ast.Name) and v.id not in bound and v.id not in functions
            for v in values)

    for node in nodes:
        if isinstance(node, ast.Call) and not isinstance(node.func, ast.Attribute) and \
                not (isinstance(node.func, ast.Name) and known(node.func.id)):
            return 0  # (a call through a value: any function value may be called)
    replaced = 0
    for node in nodes:
        if isinstance(node, ast.Tuple):
            for i, item in enumerate(node.elts):
                if isinstance(item, ast.Name) and isinstance(item.ctx, ast.Load) and \
                        item.id in functions and not bound.get(item.id):
                    node.elts[i] = ast.copy_location(ast.Constant(None), item)
                    replaced += 1
    return replaced


def _globals_of(compiled: Compiled) -> dict[str, Any]:
    python = compiled.fn.python if isinstance(compiled.fn, NativeFunction) else compiled.fn
    return getattr(getattr(python, "__wrapped__", python), "__globals__", {})


def native_source(compiled: Compiled) -> str:
    """The module that the native backend compiles (for reading; `tapeless show`)."""
    python = compiled.fn.python if isinstance(compiled.fn, NativeFunction) else compiled.fn
    # (None for a program started from its record: the module's first function)
    root = getattr(getattr(python, "__wrapped__", python), "__name__", None)
    tree, math_names = lower_source(compiled.source, _globals_of(compiled), root)
    return ast.unparse(tree) + "\n" + _helpers(math_names)


# A program with no loop and no recursion whose largest array argument has at least this
# many elements, and that multiplies matrices, is array-bound (`array_bound`).
ARRAY_BOUND = 1024


def array_bound(tree: ast.Module, largest: int) -> str | None:
    """Why the lowered module `tree` gains nothing from Numba, or None: it has no loop and
    no recursion (each of its operations runs once per call), an argument is an array of
    at least `ARRAY_BOUND` elements (`largest`: the most) and it multiplies matrices
    (`@`), so BLAS does the work on both backends and Numba's compile would buy nothing
    (the MLP). Not a program of elementwise operations alone: Numba fuses those into one
    loop (no temporary arrays) and runs them 0.6-0.85× NumPy's time even at 65,536
    elements. Decided before Numba is asked; `TAPELESS_NATIVE_SPEED_CHECK=0` keeps such
    a program native."""
    if largest < ARRAY_BOUND or os.environ.get("TAPELESS_NATIVE_SPEED_CHECK", "1") == "0":
        return None
    nodes = list(ast.walk(tree))
    if any(isinstance(n, (ast.For, ast.While, ast.comprehension)) for n in nodes) or \
            _recursive(tree) or not any(isinstance(n, ast.MatMult) for n in nodes):
        return None
    return (f"array-bound: no loop or recursion, matrix products and an array argument "
            f"of {largest} elements, so BLAS does the work on either backend "
            "(TAPELESS_NATIVE_SPEED_CHECK=0 keeps it native)")


def compile_native(compiled: Compiled, largest_array: int = 0) -> Compiled:
    """`compiled` (the Python backend's module of a program) with an entry that runs it as
    native code, or on the Python backend with the reason recorded where it cannot
    (`largest_array`: the most elements of an array argument, for `array_bound`)."""
    python = compiled.fn
    inner = getattr(python, "__wrapped__", python)  # (a packed `*args` entry: see pygen)
    root = inner.__name__
    module = _Module(compiled, root)
    if inner is not python:
        fallback = module.fallback("*args or keyword-only parameters", None)
        return _with_entry(compiled, NativeFunction(python, None, module, fallback))
    try:
        tree, math_names = lower_source(compiled.source, _globals_of(compiled), root)
    except _Refused as refused:
        fallback = module.fallback(refused.reason, module.user_line(refused.lines) or
                                   refused.line)
        return _with_entry(compiled, NativeFunction(python, None, module, fallback))
    module.tree = tree
    bound = array_bound(tree, largest_array)
    if bound is not None:
        fallback = module.fallback(bound, None)
        return _with_entry(compiled, NativeFunction(python, None, module, fallback))
    namespace: dict[str, Any] = dict(python.__globals__)
    recursive = _recursive(tree)
    # (`native_paths`: the Python result's NumPy types per `return`; not for a recursion,
    # whose entry is also the function it calls)
    entry = None if recursive else add_path_entry(tree, root)
    helpers = ast.parse(_helpers(math_names))
    offset = len(compiled.source.splitlines()) + 1
    ast.increment_lineno(helpers, offset)
    tree.body.extend(helpers.body)
    names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    key = _cache_key(tree, {k: v for k, v in namespace.items() if k not in names})
    # (Numba 0.68 crashes loading the cached code of a recursive function compiled as
    # it is called: such a module is compiled again for its first call's signatures once
    # that call passed its checks, and cached then: `_cache_recursion`.)
    directory = cache_dir() if key is not None and not recursive else None
    if recursive and key is not None:
        module.recursive_key = key
    if directory is not None and key is not None:
        stem = f"{_safe(root)}_{key[:24]}"
        path = directory / f"{stem}.py"
        _write_once(path, compiled.source)
        filename = str(path)
    else:
        stem = f"{_safe(root)}_{next(_uncached)}"
        filename = compiled.filename
    module.filename = filename
    module.stem = stem
    module.cached = directory is not None
    module.namespace = namespace
    import numba

    _register_overloads()
    namespace.update(overloads())
    # A module registered under its name: Numba's cached code finds its globals by
    # importing the module of the function it was compiled from.
    name = f"tapeless_native.{stem}"
    mod = sys.modules.get(name)
    if mod is None:
        mod = sys.modules[name] = types.ModuleType(name)
        mod.__file__ = filename
        mod.__dict__.update(namespace)
        exec(compile(tree, filename, "exec"), mod.__dict__)  # noqa: S102
        for fn_name in names:
            setattr(mod, fn_name, numba.njit(cache=directory is not None, **_NJIT)(
                getattr(mod, fn_name)))
    module.dispatchers = [getattr(mod, fn_name) for fn_name in names]
    made = NativeFunction(python, getattr(mod, entry or root), module, None)
    if entry is not None:
        made.paths = {}
    return _with_entry(compiled, made)


def overloads() -> dict[str, Any]:
    """The helpers with native twins, by the names lowered code calls them by."""
    return {f"_nt_{name}": globals()[f"_nt_{name}"] for name in _OVERLOADS + _LOWERING_OVERLOADS}


_uncached = itertools.count()
# Numba's options (part of the cache key: Numba's own key leaves them out). Bounds checks:
# an index out of range raises IndexError, as in CPython.
_NJIT: dict[str, Any] = {"boundscheck": True}


def _with_entry(compiled: Compiled, entry: NativeFunction) -> Compiled:
    return Compiled(entry, compiled.source, compiled.filename, compiled.linemap)


def _recursive(tree: ast.Module) -> bool:
    """Whether a function of the module calls itself, directly or through others."""
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    calls = {name: {c.func.id for c in ast.walk(fn) if isinstance(c, ast.Call) and
                    isinstance(c.func, ast.Name) and c.func.id in functions}
             for name, fn in functions.items()}
    for start in functions:
        seen, todo = set(), list(calls[start])
        while todo:
            name = todo.pop()
            if name == start:
                return True
            if name not in seen:
                seen.add(name)
                todo.extend(calls[name])
    return False


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)[:40] or "f"


def _cache_key(tree: ast.Module, namespace: dict[str, Any]) -> str | None:
    """A hash of everything the native code depends on: the lowered module, the values
    of the globals it reads, and the versions that compile it; None where a global
    cannot be keyed by its content (such a module is not cached)."""
    import numba

    h = hashlib.sha256()
    h.update(ast.dump(tree).encode())
    h.update(repr((numba.__version__, np.__version__, sys.version, _NJIT)).encode())
    h.update(_own_source_hash())  # (the helpers' overloads are compiled into the code)
    for name in sorted(namespace):
        if name.startswith("__") or name in ("_rt", "_sp", "_sla"):
            continue
        part = _fingerprint(namespace[name])
        if part is None:
            return None
        h.update(name.encode() + b"=" + part)
    return h.hexdigest()


@functools.cache
def _own_source_hash() -> bytes:
    """A hash of this module's source: the lowering and the overloads it compiles in."""
    return hashlib.sha256(Path(__file__).read_bytes()).digest()


def _write_once(path: Path, text: str) -> None:
    """Write `text` to `path` unless it is there (atomically: a concurrent writer writes
    the same text). The file is never rewritten: Numba's cache checks its time stamp."""
    if path.exists():
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
