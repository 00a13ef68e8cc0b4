"""Helpers for gradient tests: pytrees of float leaves, random directions and
cotangents, and central finite differences in float64."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np


def is_float_leaf(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, (float, np.floating)):
        return True
    return isinstance(x, np.ndarray) and x.dtype.kind == "f"


def is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def is_dataclass_value(x: Any) -> bool:
    return dataclasses.is_dataclass(x) and not isinstance(x, type)


def tree_map(f: Callable[..., Any], x: Any, *rest: Any) -> Any:
    """Apply `f` to every float leaf of `x` (and the matching leaves of `rest`); other
    leaves (ints, bools, strings, None, classes, ...) are kept from `x`."""
    if is_namedtuple(x):
        return type(x)(*(tree_map(f, *parts) for parts in zip(x, *rest, strict=True)))
    if isinstance(x, tuple):
        return tuple(tree_map(f, *parts) for parts in zip(x, *rest, strict=True))
    if isinstance(x, list):
        return [tree_map(f, *parts) for parts in zip(x, *rest, strict=True)]
    if isinstance(x, dict):
        return {k: tree_map(f, x[k], *(r[k] for r in rest)) for k in x}
    if is_dataclass_value(x):
        return dataclasses.replace(x, **{
            fl.name: tree_map(f, getattr(x, fl.name), *(getattr(r, fl.name) for r in rest))
            for fl in dataclasses.fields(x)})
    if is_float_leaf(x):
        return f(x, *rest)
    return x


def leaves(x: Any) -> list[Any]:
    out: list[Any] = []
    tree_map(lambda leaf: out.append(leaf), x)
    return out


def vdot(a: Any, b: Any) -> float:
    """Sum over matching float leaves of a * b."""
    return float(sum(np.sum(np.asarray(x, dtype=np.float64) * np.asarray(y, np.float64))
                     for x, y in zip(leaves(a), leaves(b), strict=True)))


def abs_dot(a: Any, b: Any) -> float:
    return float(sum(np.sum(np.abs(np.asarray(x, np.float64) * np.asarray(y, np.float64)))
                     for x, y in zip(leaves(a), leaves(b), strict=True)))


def random_like(rng: np.random.Generator, x: Any) -> Any:
    def one(leaf: Any) -> Any:
        if isinstance(leaf, np.ndarray):
            return rng.normal(size=leaf.shape)
        return float(rng.normal())

    return tree_map(one, x)


def random_cotangent(rng: np.random.Generator, y: Any) -> Any:
    """A random cotangent for the value `y`: its structure, random float leaves, None
    where `y` has a leaf that is not a float (an int, a string, ...)."""
    def one(leaf: Any) -> Any:
        if is_float_leaf(leaf):
            return rng.normal(size=leaf.shape) if isinstance(leaf, np.ndarray) else \
                float(rng.normal())
        return None

    return tree_map_all(one, y)


def tree_map_all(f: Callable[[Any], Any], x: Any) -> Any:
    """Apply `f` to every leaf of `x`, float or not."""
    if is_namedtuple(x):
        return type(x)(*(tree_map_all(f, v) for v in x))
    if isinstance(x, (tuple, list)):
        return type(x)(tree_map_all(f, v) for v in x)
    if isinstance(x, dict):
        return {k: tree_map_all(f, v) for k, v in x.items()}
    if is_dataclass_value(x):
        return dataclasses.replace(x, **{fl.name: tree_map_all(f, getattr(x, fl.name))
                                         for fl in dataclasses.fields(x)})
    return f(x)


def axpy(t: float, v: Any, x: Any) -> Any:
    """x + t * v, leaf by leaf, keeping each leaf's kind (float stays float)."""
    def one(xl: Any, vl: Any) -> Any:
        out = xl + t * vl
        if isinstance(xl, float) and not isinstance(xl, np.floating):
            return float(out)
        if isinstance(xl, np.floating):
            return type(xl)(out)
        return np.asarray(out, dtype=xl.dtype)

    return tree_map(one, x, v)


def directional_fd(f: Callable[..., float], args: tuple, argnums: tuple[int, ...],
                   direction: tuple, h: float = 1e-3) -> float:
    """d/dt f(args with args[i] += t * direction[k]) at t = 0, by the 4-point central
    stencil (error O(h^4))."""
    def at(t: float) -> float:
        moved = list(args)
        for k, i in enumerate(argnums):
            moved[i] = axpy(t, direction[k], args[i])
        return float(f(*moved))

    return (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h)


def elementwise_fd(f: Callable[[np.ndarray], float], x: Any, eps: float = 1e-6
                   ) -> np.ndarray:
    """The gradient of a scalar function of one array by central differences, one
    element at a time."""
    x = np.asarray(x, dtype=float)
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        hi, lo = x.copy(), x.copy()
        hi[i] += eps
        lo[i] -= eps
        out[i] = (f(hi) - f(lo)) / (2 * eps)
    return out


def assert_same_structure(grad: Any, like: Any, path: str = "grad") -> None:
    """The gradient has the structure of the argument: same containers, arrays of the
    same shape with a float dtype, floats for floats."""
    if is_namedtuple(like):
        assert type(grad) is type(like), f"{path}: {type(grad).__name__} != {type(like)}"
    elif isinstance(like, (tuple, list, dict)):
        assert type(grad) is type(like), \
            f"{path}: {type(grad).__name__} != {type(like).__name__}"
    elif is_dataclass_value(like):
        assert type(grad) is type(like), f"{path}: {type(grad).__name__} != {type(like)}"
    if isinstance(like, (tuple, list)):
        assert len(grad) == len(like), f"{path}: length {len(grad)} != {len(like)}"
        for i, (g, x) in enumerate(zip(grad, like, strict=True)):
            if is_float_leaf(x) or isinstance(x, (tuple, list, dict)) or \
                    is_dataclass_value(x):
                assert_same_structure(g, x, f"{path}[{i}]")
    elif isinstance(like, dict):
        assert list(grad) == list(like), f"{path}: keys {list(grad)} != {list(like)}"
        for k in like:
            assert_same_structure(grad[k], like[k], f"{path}[{k!r}]")
    elif is_dataclass_value(like):
        for fl in dataclasses.fields(like):
            assert_same_structure(getattr(grad, fl.name), getattr(like, fl.name),
                                  f"{path}.{fl.name}")
    elif isinstance(like, np.ndarray) and like.dtype.kind == "f":
        assert isinstance(grad, np.ndarray), f"{path}: {type(grad).__name__} is not an array"
        assert grad.shape == like.shape, f"{path}: shape {grad.shape} != {like.shape}"
        assert grad.dtype.kind == "f", f"{path}: dtype {grad.dtype}"
    elif is_float_leaf(like):
        assert isinstance(grad, (float, np.floating)) or (
            isinstance(grad, np.ndarray) and grad.shape == ()), \
            f"{path}: {type(grad).__name__} for a float"


def check_directional(grad: Any, f: Callable[..., float], args: tuple,
                      argnums: tuple[int, ...], rng: np.random.Generator,
                      rtol: float = 1e-6, atol: float = 1e-8, what: str = "",
                      h: float = 1e-3) -> None:
    """<grad, v> == directional FD of f along v, for a random v."""
    direction = tuple(random_like(rng, args[i]) for i in argnums)
    analytic = vdot(grad, direction)
    numeric = directional_fd(f, args, argnums, direction, h)
    scale = abs_dot(grad, direction) + abs(numeric)
    assert math.isfinite(analytic), f"{what}: gradient is not finite: {grad!r}"
    assert abs(analytic - numeric) <= atol + rtol * scale, \
        f"{what}: <grad, v> = {analytic!r}, finite differences give {numeric!r}\n" \
        f"grad = {grad!r}"


_counter = itertools.count()


def load_source(source: str, directory: Path, stem: str = "generated") -> Any:
    """Write `source` to a fresh .py file (tapeless reads the source) and import it."""
    index = next(_counter)
    path = directory / f"{stem}_{index}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"_tl_{stem}_{index}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclasses.dataclass(frozen=True)
class Point:
    x: Any
    y: Any


class Pair(NamedTuple):
    a: Any
    b: Any


@dataclasses.dataclass(frozen=True)
class Scaler:
    """A dataclass whose method is named like a built-in type's (`dict.update`)."""
    s: Any

    def update(self, x: Any) -> Any:
        return self.s * np.sin(x)


def in_place_adds(source: str) -> int:
    """How many statements of generated code add a piece into an accumulator in place,
    `d_x[i] += piece` (what the optimizer makes of a backward loop's accumulator of element
    or row reads of a float64 array on the Python backend: no run-time helper, no test)."""
    import re

    return len(re.findall(r"^\s+d_\w*\[[^\n]*\] \+= ", source, re.M))


def grads_without_step(monkeypatch: Any, step: str, fn: Callable, args: tuple,
                       argnums: Any = 0, changes: bool | None = True) -> tuple[str, Any, Any]:
    """The gradient's source and value as the optimizer makes it, and the value with its
    step `step` (a function of `tapeless.opt.driver`) turned off; `changes`: whether the
    step made other code (None: not checked)."""
    import tapeless as tl
    import tapeless.opt.driver as driver

    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    g = tl.grad(fn, argnums=argnums)
    source = g.source_for(*args)
    got = g(*args)
    with monkeypatch.context() as m:
        m.setattr(driver, step, lambda root, *_: 0)
        off = tl.grad(fn, argnums=argnums)
        assert changes is None or (off.source_for(*args) != source) == changes
        want = off(*args)
    return source, got, want
