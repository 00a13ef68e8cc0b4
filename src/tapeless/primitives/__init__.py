"""Primitives: the operations tapeless does not look inside, each registered once with
its signature, implementation, emission and derivative rule."""

# Registration happens on import: primitives first, then their rules.
from . import (  # noqa: F401
    ad_ops,
    batch_rules,
    core,
    jvp_arrays,
    jvp_more,
    jvp_random,
    jvp_rules,
    keyword_ops,
    numpy_ops,
    random_ops,
    rules_arrays,
    rules_core,
    rules_linalg,
    rules_numpy,
    rules_random,
    rules_scipy,
    scipy_ops,
    update_ops,
)
from .registry import ATTRIBUTES, BY_CALLABLE, METHODS, PRIMITIVES, Primitive, lookup_callable

__all__ = ["ATTRIBUTES", "BY_CALLABLE", "METHODS", "PRIMITIVES", "Primitive", "lookup_callable"]
