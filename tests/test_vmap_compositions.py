"""`tl.vmap` composed with the Jacobians where those failed (issue 14), each against a
Python loop over the batch (and finite differences for a gradient):

- `tl.vmap(tl.jacfwd(f))` inside compiled code raised `RaggedBatch` where no shape
  differs: `tl.jacfwd` is a `tl.vmap` of `tl.jvp`, and the outer `tl.vmap` batches the
  inner one's run-time helpers. `if not nonzero:` on a list of batched values (in
  `batch_rules._stacked`) was taken element by element (`np.not_equal(list, 0)`), so
  both branches ran and their results, of different shapes, were selected. A batched
  tuple, list or dict has the same length for every element: its truth is the same
  for every element now (`batch_rules.as_mask`).
- `tl.grad` of that (`tl.grad` of a function calling `tl.vmap(tl.jacfwd(f))`) failed
  to compile (`KeyError: 'grad_lambda'`): an optimizer round redirected a node of a
  closure to a new free variable but forgot only the enclosing graphs' schedules, not
  those of a sibling that calls the closure; an inlining later in the round copied the
  sibling by its stale schedule, and the copy read the original's node
  (`driver._Sweep._forget_readers`).
- `tl.vmap(tl.jacrev(f), in_axes=(0, None))` unoptimized (`TAPELESS_OPTIMIZE=0`) raised
  "'bool' object is not subscriptable": the inner `np.sum` rule's arguments, a batched
  tuple `+ (None, False)`, kept the unbatched items unbatched, and the per-element call
  indexed `False` (`batch_rules.concatenated`; an element of a batched flag is a Python
  bool, as NumPy's `keepdims` wants)."""

from typing import Any

import numpy as np
import pytest
from gradcheck import elementwise_fd

import tapeless as tl

XS = np.random.default_rng(0).normal(size=(4, 3))
Y = np.array([0.5, -1.0, 2.0])


def f(x: Any) -> Any:
    return np.sin(x) * x[0]


def f2(x: Any, y: Any) -> Any:
    return np.sin(x) * y + x[0] * np.sum(y)



def _looped_jacfwd(xs: np.ndarray) -> np.ndarray:
    return np.stack([tl.jacfwd(f)(x) for x in xs])


def test_vmap_of_jacfwd_inside_jit() -> None:
    got = tl.jit(lambda z: tl.vmap(tl.jacfwd(f))(z))(XS)
    np.testing.assert_allclose(got, _looped_jacfwd(XS), rtol=1e-12, atol=1e-14)


@pytest.mark.slow  # (a compile of minutes on a loaded machine: tl.vmap of tl.jacfwd's size)
def test_grad_of_a_function_calling_vmap_of_jacfwd() -> None:
    def h(z: Any) -> Any:
        return np.sum(np.sin(tl.vmap(tl.jacfwd(f))(z)))

    def looped(z: Any) -> Any:
        return np.sum(np.sin(_looped_jacfwd(z)))

    got = tl.grad(h)(XS)
    np.testing.assert_allclose(got, elementwise_fd(looped, XS), rtol=1e-6, atol=1e-8)


def test_vmap_of_jacrev_with_an_unmapped_argument(optimize: str) -> None:
    want = np.stack([tl.jacrev(f2)(x, Y) for x in XS])
    got = tl.vmap(tl.jacrev(f2), in_axes=(0, None))(XS, Y)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got, np.stack([elementwise_fd(lambda u: f2(u, Y)[k], x)
                                              for x in XS for k in range(3)]
                                             ).reshape(4, 3, 3), rtol=1e-6, atol=1e-8)


def test_a_batched_tuple_concatenated_with_an_unbatched_one(optimize: str) -> None:
    # (every item of the result batched: here spread into a call that runs per element;
    # `optimize`: conftest's fixture, the optimizer on and off)

    def total(a: Any, axis: Any, keep: Any) -> Any:
        return np.sum(a, axis=axis, keepdims=keep)

    def g(x: Any) -> Any:
        args = (x, 0) + (True,)
        return total(*args) * 2.0

    xs = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(tl.vmap(g)(xs), np.stack([g(x) for x in xs]), rtol=1e-12)
