"""Reverse rules of the random draws (`random_ops.py`) that are differentiable: a sample
that is a differentiable function of its distribution's parameters and of the numbers
drawn (reparameterization). Each draws once, as CPython does (the draw is an effect of
the rule's body, kept in the forward pass); the backward pass computes from the sample
and never draws. The other draws (integers, binomial, standard normal, ...) are not
differentiable: their sensitivities are zero (a discrete sample is piecewise constant in
its parameters)."""

# ruff: noqa: E731
from __future__ import annotations

import numpy as np

from ..runtime import (
    ZERO,
    exponential_and_standard,
    normal_and_standard,
    rng_choice,
    rng_permutation,
    sens_index,
    sens_of,
    standard_variates,
    take_sens,
    unbroadcast,
    uniform_and_unit,
)
from .registry import rule
from .rules_numpy import _array_back

# normal, uniform, exponential: the sample is loc + scale * z, low + (high - low) * u,
# scale * e, of standard variates drawn (`runtime.normal_and_standard`, ...: the sample
# as NumPy draws it, bit for bit, and the standard variates it was made from).


@rule("rng_normal")
def _rng_normal(rng, loc, scale, size):
    drawn = normal_and_standard(rng, loc, scale, size)
    standard = standard_variates(drawn, loc, scale)
    back = lambda d: (ZERO, unbroadcast(d, loc), unbroadcast(d * standard, scale), ZERO)
    return drawn[0], back


@rule("np.random.normal")
def _np_normal(loc, scale, size):
    drawn = normal_and_standard(None, loc, scale, size)
    standard = standard_variates(drawn, loc, scale)
    return drawn[0], lambda d: (unbroadcast(d, loc), unbroadcast(d * standard, scale), ZERO)


@rule("normal_and_standard")
def _normal_and_standard(rng, loc, scale, size):
    drawn = normal_and_standard(rng, loc, scale, size)
    standard = standard_variates(drawn, loc, scale)
    sample_sens = lambda d: sens_of(sens_index(d, 0), drawn[0])
    back = lambda d: (ZERO, unbroadcast(sample_sens(d), loc),
                      unbroadcast(sample_sens(d) * standard, scale), ZERO)
    return drawn, back


@rule("rng_uniform")
def _rng_uniform(rng, low, high, size):
    drawn = uniform_and_unit(rng, low, high, size)
    unit = standard_variates(drawn, low, high - low)
    back = lambda d: (ZERO, unbroadcast(d * (1.0 - unit), low), unbroadcast(d * unit, high),
                      ZERO)
    return drawn[0], back


@rule("np.random.uniform")
def _np_uniform(low, high, size):
    drawn = uniform_and_unit(None, low, high, size)
    unit = standard_variates(drawn, low, high - low)
    back = lambda d: (unbroadcast(d * (1.0 - unit), low), unbroadcast(d * unit, high), ZERO)
    return drawn[0], back


@rule("uniform_and_unit")
def _uniform_and_unit(rng, low, high, size):
    drawn = uniform_and_unit(rng, low, high, size)
    unit = standard_variates(drawn, low, high - low)
    sample_sens = lambda d: sens_of(sens_index(d, 0), drawn[0])
    back = lambda d: (ZERO, unbroadcast(sample_sens(d) * (1.0 - unit), low),
                      unbroadcast(sample_sens(d) * unit, high), ZERO)
    return drawn, back


@rule("rng_exponential")
def _rng_exponential(rng, scale, size):
    drawn = exponential_and_standard(rng, scale, size)
    standard = standard_variates(drawn, 0.0, scale)
    return drawn[0], lambda d: (ZERO, unbroadcast(d * standard, scale), ZERO)


@rule("np.random.exponential")
def _np_exponential(scale, size):
    drawn = exponential_and_standard(None, scale, size)
    standard = standard_variates(drawn, 0.0, scale)
    return drawn[0], lambda d: (unbroadcast(d * standard, scale), ZERO)


@rule("exponential_and_standard")
def _exponential_and_standard(rng, scale, size):
    drawn = exponential_and_standard(rng, scale, size)
    standard = standard_variates(drawn, 0.0, scale)
    back = lambda d: (ZERO, unbroadcast(sens_of(sens_index(d, 0), drawn[0]) * standard, scale),
                      ZERO)
    return drawn, back


# choice and permutation of an array: its items, at indices drawn as NumPy draws them
# (the same numbers: the indices depend on the array's length alone); of an int n, a
# draw of ints.


@rule("rng_choice")
def _rng_choice(rng, a, size, replace, p, axis, shuffle):
    if np.ndim(a) == 0:
        y = rng_choice(rng, a, size, replace, p, axis, shuffle)
        return y, lambda d: (ZERO, ZERO, ZERO, ZERO, ZERO, ZERO, ZERO)
    arr = np.asarray(a)
    index = rng_choice(rng, np.shape(arr)[axis], size, replace, p, 0, shuffle)
    back = lambda d: (ZERO, _array_back(take_sens(d, arr, index, axis), a), ZERO, ZERO,
                      ZERO, ZERO, ZERO)
    return np.take(arr, index, axis), back


@rule("np.random.choice")
def _np_choice(a, size, replace, p):
    if np.ndim(a) == 0:
        y = np.random.choice(a, size, replace, p)
        return y, lambda d: (ZERO, ZERO, ZERO, ZERO)
    arr = np.asarray(a)
    if np.ndim(arr) != 1:
        raise ValueError("a must be 1-dimensional")  # (NumPy's message)
    index = np.random.choice(len(arr), size, replace, p)
    back = lambda d: (_array_back(take_sens(d, arr, index, 0), a), ZERO, ZERO, ZERO)
    return np.take(arr, index, 0), back


@rule("rng_permutation")
def _rng_permutation(rng, x, axis):
    if np.ndim(x) == 0:
        y = rng_permutation(rng, x, axis)
        return y, lambda d: (ZERO, ZERO, ZERO)
    arr = np.asarray(x)
    index = rng_permutation(rng, np.shape(arr)[axis], 0)
    back = lambda d: (ZERO, _array_back(take_sens(d, arr, index, axis), x), ZERO)
    return np.take(arr, index, axis), back


@rule("np.random.permutation")
def _np_permutation(x):
    if np.ndim(x) == 0:
        y = np.random.permutation(x)
        return y, lambda d: (ZERO,)
    arr = np.asarray(x)
    index = np.random.permutation(len(arr))
    return np.take(arr, index, 0), lambda d: (_array_back(take_sens(d, arr, index, 0), x),)
