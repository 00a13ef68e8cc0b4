"""The optimizer: rewrites registered by concern, run by `driver.optimize`.

The modules are imported here in a fixed order, which is the order their rewrites are
registered in: the pass order (`rules.PASS_ORDER`)."""

from . import simplify, structure, zeros, algebra, arrays, softmax, results  # noqa: F401, I001
from .driver import optimize
from .rules import PASS_ORDER, passes_up_to

__all__ = ["PASS_ORDER", "optimize", "passes_up_to"]
