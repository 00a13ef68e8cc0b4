"""`tl.grad` of a function that calls `tl.vmap` of a gradient whose function reads
elements of its argument more than once (`x[0] * x[1]`): KNOWN WRONG, silently (all
zeros, with or without the optimizer; found at the end of the 2026-12-07 session by the
compositions matrix). One element read (`x[0] ** 3`) or slices (`x[:1] * x[1:]`) give
the right values. The tests below pin what is right (finite differences) and what is
still wrong (strict xfails: they fail the suite once the bug is fixed, so the marks go
then)."""

import numpy as np
import pytest

import tapeless as tl

X = np.array([0.3, -0.7])
E = np.eye(2)


def _fd(h):
    e = 1e-6
    return np.array([(h(X + e * d) - h(X - e * d)) / (2 * e) for d in np.eye(2)])


def _through_vmap(f):
    gf = tl.grad(f)
    return lambda u: np.sum(tl.vmap(lambda t: gf(u) * t)(E))


RIGHT = {
    "one element read": lambda x: x[0] ** 3,
    "slices": lambda x: np.sum(x[:1] * x[1:]),
    "np.prod": lambda x: np.prod(x),
}
WRONG = {
    "two element reads": lambda x: x[0] * x[1],
    "one element read twice": lambda x: x[0] * x[0],
    "sin(x0) * x1": lambda x: np.sin(x[0]) * x[1],
}


@pytest.mark.parametrize("name", list(RIGHT))
def test_grad_of_vmap_of_grad(name: str) -> None:
    h = _through_vmap(RIGHT[name])
    np.testing.assert_allclose(tl.grad(h)(X), _fd(h), rtol=1e-6, atol=1e-8)


@pytest.mark.xfail(strict=True, reason="known silent wrong result: the gradient of a vmap "
                   "of a gradient that reads two elements is zero (open; see the module)")
@pytest.mark.parametrize("name", list(WRONG))
def test_grad_of_vmap_of_grad_with_element_reads(name: str) -> None:
    h = _through_vmap(WRONG[name])
    np.testing.assert_allclose(tl.grad(h)(X), _fd(h), rtol=1e-6, atol=1e-8)
