"""Datasets that ship with the packages the examples install: scikit-learn's digits, and
text that ships with Python (the source of standard-library modules, the Zen of Python)."""

from __future__ import annotations

import codecs
import importlib
import inspect

import numpy as np


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 8x8 digit images of scikit-learn, as (n, 64) floats in [0, 1], and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data / 16.0, d.target.astype(np.int64)


def split(rng: np.random.Generator, n: int, *sizes: int) -> list[np.ndarray]:
    """Disjoint random index arrays of the given sizes (the last takes the rest if -1)."""
    order = rng.permutation(n)
    parts, start = [], 0
    for size in sizes:
        stop = n if size < 0 else start + size
        parts.append(order[start:stop])
        start = stop
    return parts


def zen_of_python() -> str:
    """PEP 20, as `import this` prints it (the module keeps it ROT13-encoded)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        import this
    return codecs.decode(this.s, "rot13")


def module_source(*names: str) -> str:
    """The source of standard-library modules, joined."""
    return "\n".join(inspect.getsource(importlib.import_module(name)) for name in names)


class Vocabulary:
    """Printable ASCII plus newline; any other character maps to '?'."""

    def __init__(self) -> None:
        self.chars = "\n" + "".join(chr(c) for c in range(32, 127))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        unknown = self.index["?"]
        return np.array([self.index.get(c, unknown) for c in text], dtype=np.int64)

    def decode(self, codes: np.ndarray) -> str:
        return "".join(self.chars[int(i)] for i in codes)


def windows(codes: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window of `context` characters and the character that follows it."""
    idx = np.arange(context)[None, :] + np.arange(len(codes) - context)[:, None]
    return codes[idx], codes[context:]
