"""Sparse sensitivities of arrays read an element or a small slice at a time.

The sensitivity of `x` given that of `x[i, j]` is an array of x's shape, zero but at
`[i, j]`. Built densely, a program that reads n² scalars of an n×n array (a determinant
by Laplace expansion, a loop over matrix entries) pays O(n²) per read in its backward
pass. `IndexedSens` is that sensitivity kept as a list of `(index, d)` pieces over an
optional dense base; sums of them (`gadd`, `+`) append pieces, and the array is only
built, once, where a value is needed: O(the reads) in all, like a hand-written adjoint
that adds into one buffer.

Sensitivities are values: one may be added to twice (the same `d_x` flowing into two
sums). Handles therefore share an append-only list and each sees its own prefix of it
(`count` pieces): a handle at the end of the list appends in place; any other copies
its prefix first. Anything else done with an `IndexedSens` (a NumPy function, an
operator other than `+`, an attribute) builds the dense array and does it there, so it
behaves as the array it stands for.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

# Arrays smaller than this get dense sensitivities (a zero array costs less than the
# bookkeeping), and so do reads of more than 1/SPARSE_FRACTION of the array.
SPARSE_MIN_SIZE = 64
SPARSE_FRACTION = 8

_F8 = np.dtype(np.float64)
_INTS = (int, np.integer)


class IndexedSens(NDArrayOperatorsMixin):
    """The sensitivity of a float64 array of `shape`: `base` (a dense array, or None for
    zeros) plus `pieces[:count]`, each `(index, d)` meaning `d` added at `[index]`."""

    __slots__ = ("shape", "base", "pieces", "count")
    __array_priority__ = 20.0
    dtype = _F8

    def __init__(self, shape: tuple, base: Any, pieces: list, count: int) -> None:
        self.shape = shape
        self.base = base
        self.pieces = pieces
        self.count = count

    def dense(self) -> Any:
        """The array this sensitivity stands for (a new array each time)."""
        out = np.zeros(self.shape) if self.base is None else np.array(self.base,
                                                                        dtype=_F8)
        pieces = self.pieces
        for k in range(self.count):
            index, d = pieces[k]
            out[index] += d
        return out

    def _extended(self, other: IndexedSens | None, base: Any) -> IndexedSens:
        """This handle's pieces followed by `other`'s, over `base`."""
        pieces, count = self.pieces, self.count
        if other is not None:
            extra = other.pieces[:other.count] if other.count != len(other.pieces) else \
                other.pieces
            if len(pieces) != count:
                pieces = pieces[:count]
            pieces.extend(extra)
            count += other.count
        return IndexedSens(self.shape, base, pieces, count)

    def plus(self, other: Any) -> Any:
        """`self + other` for another sensitivity of the same array, kept sparse; None
        where `other` is not one (another shape or dtype)."""
        if type(other) is IndexedSens:
            if other.shape != self.shape:
                return None
            a, b = (self, other) if self.count >= other.count else (other, self)
            if a.base is None:
                base = b.base
            elif b.base is None:
                base = a.base
            else:
                base = a.base + b.base
            return a._extended(b, base)
        if type(other) is np.ndarray and other.shape == self.shape and other.dtype == _F8:
            return self._extended(None, other if self.base is None else self.base + other)
        return None

    def add_pieces(self, indices: tuple, ds: tuple, fraction: int, zero: object) -> bool:
        """Add `ds[k]` at `indices[k]` in place (the pieces appended to this handle; a
        `d` that is `zero`, the runtime's symbolic zero, skipped), for an accumulator
        that nothing else holds and indices that are ints or tuples of ints. False,
        nothing done, where another handle sees past this one's pieces, the pieces
        would number 1/`fraction` of the array's size, or a `d` is not worth a piece
        (then the caller adds them densely)."""
        pieces = self.pieces
        count = self.count
        size = math.prod(self.shape)
        if len(pieces) != count or (count + len(ds)) * fraction >= size:
            return False
        for d in ds:
            t = type(d)
            if t is not float and t is not np.float64 and not (
                    t is np.ndarray and d.dtype == _F8 and d.size * fraction <= size):
                if d is not zero:
                    return False
        for index, d in zip(indices, ds, strict=True):
            if d is not zero:
                pieces.append((index, d))
        self.count = len(pieces)
        return True

    def appended(self, indices: tuple, ds: tuple, fraction: int, zero: object
                 ) -> IndexedSens | None:
        """This sensitivity plus `ds[k]` at `indices[k]` (ints or tuples of ints; a `d`
        that is `zero` skipped), as a new handle: this one is left as it is, so it may
        be shared. The pieces go at the end of this handle's list where no other handle
        has extended it (O(the new pieces)), else onto a copy of its prefix. None where
        the pieces would number 1/`fraction` of the array's size, or a `d` or an index is
        not one a piece is kept for (then the caller adds them densely)."""
        count = self.count
        size = math.prod(self.shape)
        if (count + len(ds)) * fraction >= size:
            return None
        new = []
        for index, d in zip(indices, ds, strict=True):
            if d is zero:
                continue
            t = type(d)
            if t is not float and t is not np.float64:
                return None
            if type(index) is not int:
                if type(index) is not tuple:
                    return None
                for i in index:
                    if type(i) is not int:
                        return None
            new.append((index, d))
        pieces = self.pieces if len(self.pieces) == count else self.pieces[:count]
        pieces.extend(new)
        return IndexedSens(self.shape, self.base, pieces, len(pieces))

    def appended_elements(self, indices: tuple, ds: tuple, fraction: int, zero: object
                          ) -> IndexedSens | None:
        """`appended`, for indices known to be ints or tuples of ints (the optimizer's
        proof, from kinds): only the pieces' types are tested."""
        count = self.count
        if (count + len(ds)) * fraction >= math.prod(self.shape):
            return None
        for d in ds:
            if d is not zero:
                t = type(d)
                if t is not float and t is not np.float64:
                    return None
        pieces = self.pieces if len(self.pieces) == count else self.pieces[:count]
        for index, d in zip(indices, ds, strict=True):
            if d is not zero:
                pieces.append((index, d))
        return IndexedSens(self.shape, self.base, pieces, len(pieces))

    # --- behaving as the array ----------------------------------------------------------

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        out = self.dense()  # (a new float64 array: no copy where float64 is asked for)
        return out if dtype is None or np.dtype(dtype) == _F8 else out.astype(dtype)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if ufunc is np.add and method == "__call__" and len(inputs) == 2 and not kwargs:
            a, b = inputs
            r = a.plus(b) if type(a) is IndexedSens else b.plus(a)
            if r is not None:
                return r
        inputs = tuple(_densified(x) for x in inputs)
        if "out" in kwargs:
            if any(type(o) is IndexedSens for o in kwargs["out"]):
                return NotImplemented  # (`s += x`: Python falls back to `s = s + x`)
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if func is np.shape:
            return self.shape
        if func is np.ndim:
            return len(self.shape)
        return func(*_densified(args), **_densified(kwargs))

    def __iadd__(self, other: Any) -> Any:
        return self + other

    def __getitem__(self, index: Any) -> Any:
        return self.dense()[index]

    def __len__(self) -> int:
        return int(self.shape[0])

    def __iter__(self) -> Any:
        return iter(self.dense())

    def __float__(self) -> float:
        return float(self.dense())

    def __bool__(self) -> bool:
        return bool(self.dense())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dense(), name)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __repr__(self) -> str:
        return f"IndexedSens({self.dense()!r})"


def _densified(x: Any) -> Any:
    if type(x) is IndexedSens:
        return x.dense()
    if type(x) in (tuple, list):
        return type(x)(_densified(v) for v in x)
    if type(x) is dict:
        return {k: _densified(v) for k, v in x.items()}
    return x


def densified(x: Any) -> Any:
    """`x`, built as an array if it is an `IndexedSens` (what a caller receives)."""
    return x.dense() if type(x) is IndexedSens else x


def _basic(index: Any) -> bool:
    """Whether `index` is an int, a slice or a tuple of them (basic indexing: no position
    named twice)."""
    parts = index if type(index) is tuple else (index,)
    for p in parts:
        if (not isinstance(p, _INTS) or type(p) is bool) and type(p) is not slice:
            return False
    return True


def _small_piece(d: Any, index: Any, size: int) -> bool:
    """Whether `d`, the sensitivity of `x[index]` for a float64 array x of `size`
    elements, is worth keeping as a piece: a float64 number or a small float64 array,
    read by basic indexing."""
    t = type(d)
    if t is np.ndarray:
        if d.dtype != _F8 or d.size * SPARSE_FRACTION > size:
            return False
    elif t is not float and t is not np.float64:
        return False
    return _basic(index)


def indexed_sens(d: Any, x: Any, index: Any) -> IndexedSens | None:
    """The sensitivity of the float64 array `x` given `d`, that of `x[index]`, as an
    `IndexedSens`, where that pays (a large enough array, a small read, basic indexing);
    else None."""
    size = x.size
    if size < SPARSE_MIN_SIZE or x.dtype != _F8 or not _small_piece(d, index, size):
        return None
    return IndexedSens(x.shape, None, [(index, d)], 1)


def indexed_pieces(x: Any, pieces: list) -> IndexedSens | None:
    """`indexed_sens` of several `(index, d)` reads of `x`, summed in order."""
    size = x.size
    if size < SPARSE_MIN_SIZE or x.dtype != _F8:
        return None
    for index, d in pieces:
        if not _small_piece(d, index, size):
            return None
    return IndexedSens(x.shape, None, list(pieces), len(pieces))
