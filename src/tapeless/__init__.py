"""tapeless: a compiler for differentiable Python."""

from .api import ir, jit
from .errors import CompileError, GradError, TapelessError

__all__ = ["CompileError", "GradError", "TapelessError", "ir", "jit"]
__version__ = "0.1.0"
