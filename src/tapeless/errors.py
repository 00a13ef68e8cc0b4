"""Errors raised by tapeless. Every one derives from `TapelessError` and, where it comes
from user code, names file:line:col, shows the line with a caret, and says what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (errors sit below every stage)
    from .ir.nodes import Location


class TapelessError(Exception):
    """Base class of every error tapeless raises."""


class CompileError(TapelessError):
    """A construct of the user's code that tapeless cannot compile."""

    def __init__(self, message: str, loc: Location | None = None, hint: str = ""):
        self.message = message
        self.loc = loc
        self.hint = hint
        super().__init__(format_error(message, loc, hint))


class VmapError(TapelessError):
    """A function that `tl.vmap` cannot batch as written."""

    def __init__(self, message: str, loc: Location | None = None):
        where = f"{loc}: " if loc is not None else ""
        line = f"\n    {loc.source_line.strip()}" if loc is not None and loc.source_line \
            else ""
        super().__init__(f"{where}{message}{line}")


class GradError(TapelessError):
    """A differentiation request that cannot be honoured (wrong argument kind, non-scalar
    output for `grad`, ...)."""


def format_error(message: str, loc: Location | None, hint: str = "") -> str:
    parts = []
    if loc is not None:
        parts.append(f"{loc}: {message}")
        if loc.source_line:
            line = loc.source_line.rstrip("\n")
            stripped = line.lstrip()
            indent = len(line) - len(stripped)
            parts.append(f"    {stripped}")
            parts.append("    " + " " * max(loc.col - indent, 0) + "^")
    else:
        parts.append(message)
    if hint:
        parts.append(f"hint: {hint}")
    return "\n".join(parts)
