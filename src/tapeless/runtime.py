"""Helpers that generated code calls at run time."""

from __future__ import annotations

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


def check_bound(value: Any, name: str, where: str) -> Any:
    if value is UNBOUND:
        raise UnboundLocalError(
            f"{where}: local variable '{name}' is used before it is assigned on this path")
    return value


def as_sequence(iterable: Any) -> Any:
    """What a `for` loop indexes: sequences as they are, other iterables as a tuple."""
    if isinstance(iterable, (list, tuple, range)) or hasattr(iterable, "__array__"):
        return iterable
    return tuple(iterable)


def unpack(value: Any, n: int) -> Any:
    """Check a tuple-unpacking assignment's length like CPython does."""
    if isinstance(value, (tuple, list)) and len(value) != n:
        if len(value) > n:
            raise ValueError(f"too many values to unpack (expected {n})")
        raise ValueError(f"not enough values to unpack (expected {n}, got {len(value)})")
    return value
