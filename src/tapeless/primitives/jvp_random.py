"""Forward rules (`tapeless.ad.forward`) of the differentiable random draws, the
transposes of `rules_random`'s: a sample is a differentiable function of its
distribution's parameters and of the numbers drawn (reparameterization). Each rule draws
once, as the primitive does (the draw is an effect of the rule's body); the maps compute
from the sample and never draw."""

# ruff: noqa: E731
from __future__ import annotations

import numpy as np

from ..runtime import (
    ZERO,
    broadcast_like,
    exponential_and_standard,
    normal_and_standard,
    rng_choice,
    rng_permutation,
    standard_variates,
    uniform_and_unit,
)
from . import random_ops, rules_random  # noqa: F401  (first: the primitives, their rules)
from .registry import jvp

# normal, uniform, exponential: the sample is loc + scale * z, low + (high - low) * u,
# scale * e, of standard variates drawn.


@jvp("rng_normal")
def _rng_normal(rng, loc, scale, size):
    drawn = normal_and_standard(rng, loc, scale, size)
    z = standard_variates(drawn, loc, scale)
    return drawn[0], None, lambda t: broadcast_like(t, drawn[0]), \
        lambda t: broadcast_like(t * z, drawn[0]), None


@jvp("np.random.normal")
def _np_normal(loc, scale, size):
    drawn = normal_and_standard(None, loc, scale, size)
    z = standard_variates(drawn, loc, scale)
    return drawn[0], lambda t: broadcast_like(t, drawn[0]), \
        lambda t: broadcast_like(t * z, drawn[0]), None


@jvp("normal_and_standard")
def _normal_and_standard(rng, loc, scale, size):
    # (The pair (sample, standard variates): the variates do not depend on the
    # parameters.)
    drawn = normal_and_standard(rng, loc, scale, size)
    z = standard_variates(drawn, loc, scale)
    return drawn, None, lambda t: (broadcast_like(t, drawn[0]), ZERO), \
        lambda t: (broadcast_like(t * z, drawn[0]), ZERO), None


@jvp("rng_uniform")
def _rng_uniform(rng, low, high, size):
    drawn = uniform_and_unit(rng, low, high, size)
    u = standard_variates(drawn, low, high - low)
    return drawn[0], None, lambda t: broadcast_like(t * (1.0 - u), drawn[0]), \
        lambda t: broadcast_like(t * u, drawn[0]), None


@jvp("np.random.uniform")
def _np_uniform(low, high, size):
    drawn = uniform_and_unit(None, low, high, size)
    u = standard_variates(drawn, low, high - low)
    return drawn[0], lambda t: broadcast_like(t * (1.0 - u), drawn[0]), \
        lambda t: broadcast_like(t * u, drawn[0]), None


@jvp("uniform_and_unit")
def _uniform_and_unit(rng, low, high, size):
    drawn = uniform_and_unit(rng, low, high, size)
    u = standard_variates(drawn, low, high - low)
    return drawn, None, lambda t: (broadcast_like(t * (1.0 - u), drawn[0]), ZERO), \
        lambda t: (broadcast_like(t * u, drawn[0]), ZERO), None


@jvp("rng_exponential")
def _rng_exponential(rng, scale, size):
    drawn = exponential_and_standard(rng, scale, size)
    e = standard_variates(drawn, 0.0, scale)
    return drawn[0], None, lambda t: broadcast_like(t * e, drawn[0]), None


@jvp("np.random.exponential")
def _np_exponential(scale, size):
    drawn = exponential_and_standard(None, scale, size)
    e = standard_variates(drawn, 0.0, scale)
    return drawn[0], lambda t: broadcast_like(t * e, drawn[0]), None


@jvp("exponential_and_standard")
def _exponential_and_standard(rng, scale, size):
    drawn = exponential_and_standard(rng, scale, size)
    e = standard_variates(drawn, 0.0, scale)
    return drawn, None, lambda t: (broadcast_like(t * e, drawn[0]), ZERO), None


# choice and permutation of an array: its items at indices drawn as NumPy draws them (the
# tangent: the tangent's items at those indices); of an int n, a draw of ints.


@jvp("rng_choice")
def _rng_choice(rng, a, size, replace, p, axis, shuffle):
    drawn = _choice(rng, a, size, replace, p, axis, shuffle)
    return drawn[0], None, lambda t: _taken(t, drawn[1], axis), None, None, None, None, None


def _choice(rng, a, size, replace, p, axis, shuffle):
    """(the draw, the indices drawn, or None for an int a)."""
    if np.ndim(a) == 0:
        return rng_choice(rng, a, size, replace, p, axis, shuffle), None
    arr = np.asarray(a)
    index = rng_choice(rng, np.shape(arr)[axis], size, replace, p, 0, shuffle)
    return np.take(arr, index, axis), index


def _taken(t, index, axis):
    return ZERO if index is None else np.take(np.asarray(t), index, axis)


@jvp("np.random.choice")
def _np_choice(a, size, replace, p):
    drawn = _np_choice_drawn(a, size, replace, p)
    return drawn[0], lambda t: _taken(t, drawn[1], 0), None, None, None


def _np_choice_drawn(a, size, replace, p):
    if np.ndim(a) == 0:
        return np.random.choice(a, size, replace, p), None
    arr = np.asarray(a)
    if np.ndim(arr) != 1:
        raise ValueError("a must be 1-dimensional")  # (NumPy's message)
    index = np.random.choice(len(arr), size, replace, p)
    return np.take(arr, index, 0), index


@jvp("rng_permutation")
def _rng_permutation(rng, x, axis):
    drawn = _permutation(rng, x, axis)
    return drawn[0], None, lambda t: _taken(t, drawn[1], axis), None


def _permutation(rng, x, axis):
    if np.ndim(x) == 0:
        return rng_permutation(rng, x, axis), None
    arr = np.asarray(x)
    index = rng_permutation(rng, np.shape(arr)[axis], 0)
    return np.take(arr, index, axis), index


@jvp("np.random.permutation")
def _np_permutation(x):
    drawn = _np_permutation_drawn(x)
    return drawn[0], lambda t: _taken(t, drawn[1], 0)


def _np_permutation_drawn(x):
    if np.ndim(x) == 0:
        return np.random.permutation(x), None
    arr = np.asarray(x)
    index = np.random.permutation(len(arr))
    return np.take(arr, index, 0), index
