"""Finding a function's source: module-level functions are parsed alone (their lines
up to the next module-level statement), with a fall-back to the whole module."""

from __future__ import annotations

import importlib.util
import textwrap

import tapeless as tl
from tapeless.frontend import source

TRICKY = textwrap.dedent('''\
    import math


    def plain(x):
        return x + 1.0
    # a comment at column 0 inside the gap


    def deco(f):
        return f


    @deco
    def decorated(x):
        return math.sin(x)


    def with_docstring(x):
        """A docstring with a line at column 0:
    like this one."""
        return x * 2.0


    def call_spanning_lines(x):
        return max(
            x,
            0.5,
    )
    ''')


def _load(tmp_path):
    path = tmp_path / "tricky_module.py"
    path.write_text(TRICKY)
    spec = importlib.util.spec_from_file_location("tricky_module", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_functions_found_in_any_layout(tmp_path):
    mod = _load(tmp_path)
    assert tl.jit(mod.plain)(1.0) == 2.0
    assert tl.jit(mod.decorated)(0.5) == mod.decorated(0.5)
    assert tl.jit(mod.with_docstring)(1.5) == 3.0
    assert tl.jit(mod.call_spanning_lines)(0.25) == 0.5
    assert tl.grad(mod.decorated)(0.5) == mod.math.cos(0.5)
    # The first three are parsed alone; the docstring's line at column 0 cuts the
    # function's lines short, so that one falls back to parsing the module.
    for fn in (mod.plain, mod.decorated, mod.call_spanning_lines):
        assert source._top_level_def(fn.__code__) is not None, fn
    assert source._top_level_def(mod.with_docstring.__code__) is None
