"""Random numbers: the methods of a NumPy random generator (`rng.normal(...)` on a
`numpy.random.Generator` or a legacy `numpy.random.RandomState`), NumPy's legacy
`np.random.*` functions (the global RandomState) and the constructors of generators.

A draw is an effect (`Primitive.effect`): it changes its generator's state, so it is
never removed, shared with another draw, moved or repeated, and the compiled program
draws the numbers CPython draws, in the same order. A draw is not differentiated in the
parameters of its distribution, except where a sample is a differentiable function of
them and of the numbers drawn (reparameterization): `normal` in `loc` and `scale`,
`uniform` in `low` and `high`, `exponential` in `scale`, and `choice`/`permutation` of an
array in the array's items (`primitives/rules_random.py`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import runtime
from .registry import Primitive, register

# method name: (parameters after the generator's, differentiable). Each is compiled to the
# primitive `rng_<name>`, run by `runtime.rng_<name>`. Generator and RandomState methods
# share one table; a parameter only a Generator has (`dtype`, `axis`, `shuffle`, ...) is
# passed on only when it is not its default.
RANDOM_METHODS: dict[str, tuple[str, bool]] = {
    "normal": ("loc=0.0, scale=1.0, size=None", True),
    "uniform": ("low=0.0, high=1.0, size=None", True),
    "standard_normal": ("size=None, dtype=None", False),
    "random": ("size=None, dtype=None", False),
    "integers": ("low, high=None, size=None, dtype=None, endpoint=False", False),
    "choice": ("a, size=None, replace=True, p=None, axis=0, shuffle=True", True),
    "permutation": ("x, axis=0", True),
    "binomial": ("n, p, size=None", False),
    "exponential": ("scale=1.0, size=None", True),
    "poisson": ("lam=1.0, size=None", False),
    # (the legacy RandomState's)
    "randn": ("*shape", False),
    "rand": ("*shape", False),
    "randint": ("low, high=None, size=None, dtype=None", False),
    "random_sample": ("size=None", False),
    "seed": ("seed=None", False),
}

# NumPy's legacy functions of the global RandomState: (parameters, differentiable), as
# NumPy names them. Each is the primitive `np.random.<name>`, run by NumPy's function.
LEGACY_FUNCTIONS: dict[str, tuple[str, bool]] = {
    "seed": ("seed=None", False),
    "randn": ("*args", False),
    "rand": ("*args", False),
    "normal": ("loc=0.0, scale=1.0, size=None", True),
    "uniform": ("low=0.0, high=1.0, size=None", True),
    "standard_normal": ("size=None", False),
    "random": ("size=None", False),
    "random_sample": ("size=None", False),
    "randint": ("low, high=None, size=None, dtype=int", False),
    "choice": ("a, size=None, replace=True, p=None", True),
    "permutation": ("x", True),
    "binomial": ("n, p, size=None", False),
    "exponential": ("scale=1.0, size=None", True),
    "poisson": ("lam=1.0, size=None", False),
}

# Generators made in compiled code (not shared: two generators made alike draw apart).
CONSTRUCTORS: dict[str, str] = {
    "default_rng": "seed=None",
    "RandomState": "seed=None",
}

# What compiled code refuses, with what to write instead: shuffling changes an array in
# place, which compiled code does not do (`permutation` draws the same numbers).
IN_PLACE: dict[str, str] = {
    "shuffle": "write `x = rng.permutation(x)` (it draws the same numbers and returns "
               "the shuffled copy)",
}
REFUSED: dict[int, str] = {id(np.random.shuffle): IN_PLACE["shuffle"].replace(
    "rng.", "np.random.")}

# The classes of the objects whose methods RANDOM_METHODS are.
GENERATOR_TYPES = (np.random.Generator, np.random.RandomState)


def _draw(name: str, impl: Any, spec: str, differentiable: bool, *callables: Any,
          result: bool = True) -> Primitive:
    """A draw: an effect, never shared; a new number or array, never the zero."""
    return register(Primitive(name, impl, spec, effect=True, differentiable=differentiable,
                              never_zero=True,
                              numeric=result, fresh=result), *callables)


# Method name -> the primitive `x.name(...)` compiles to where x may be a generator.
METHOD_PRIMITIVES: dict[str, Primitive] = {}
for _name, (_spec, _diff) in RANDOM_METHODS.items():
    _impl = getattr(runtime, f"rng_{_name}")
    METHOD_PRIMITIVES[_name] = _draw(f"rng_{_name}", _impl, f"rng, {_spec}", _diff, _impl,
                                     result=_name != "seed")

for _name, (_spec, _diff) in LEGACY_FUNCTIONS.items():
    _fn = getattr(np.random, _name)
    _draw(f"np.random.{_name}", _fn, _spec, _diff, _fn, result=_name != "seed")

for _name, _spec in CONSTRUCTORS.items():
    _fn = getattr(np.random, _name)
    register(Primitive(f"np.random.{_name}", _fn, _spec, effect=True, differentiable=False,
                       never_zero=True), _fn)

# A reparameterized draw for derivative code (`rules_random.py`): the sample and the
# standard variates it was made from, `(sample, z)` (z None where `standard_variates`
# recovers it from the sample); differentiable in the parameters through the sample (z
# does not depend on them).
for _name, _spec in (("normal_and_standard", "rng, loc, scale, size"),
                     ("uniform_and_unit", "rng, low, high, size"),
                     ("exponential_and_standard", "rng, scale, size")):
    _impl = getattr(runtime, _name)
    register(Primitive(_name, _impl, _spec, effect=True, never_zero=True), _impl)
register(Primitive("standard_variates", runtime.standard_variates, "drawn, offset, scale",
                   differentiable=False, pure=True, numeric=True),
         runtime.standard_variates)


def method_primitive(name: str, receiver: Any) -> Primitive | None:
    """The draw `receiver.name(...)` compiles to: where `name` is a generator's method and
    the receiver may be a generator (a value known only at run time, or a generator held
    in a global or a closure); None otherwise (a method of the user's own object)."""
    if receiver is not None and not isinstance(receiver, GENERATOR_TYPES):
        return None
    return METHOD_PRIMITIVES.get(name)


def in_place_hint(name: str, receiver: Any) -> str | None:
    """What to write instead of a generator's method that shuffles in place, if `name` is
    one (None otherwise)."""
    if receiver is not None and not isinstance(receiver, GENERATOR_TYPES):
        return None
    return IN_PLACE.get(name)
