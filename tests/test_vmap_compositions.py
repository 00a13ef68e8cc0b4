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
  bool, as NumPy's `keepdims` wants).
- `tl.jacfwd(tl.jacrev(f))` inside compiled code (a `tl.vmap` of a `tl.jvp` of a
  `tl.vmap`) compiled for about 40 s of CPU into 36,000 lines: the jvp was F of the
  inner `tl.vmap` batched without kinds (its batching rules' run-time decisions, which
  the optimizer cannot fold), batched again by the outer one. The jvp of a function
  that calls `tl.vmap` is now taken of it with those calls batched for the primals'
  kinds (`vmap_api._jvp_for_kinds`): half a second, 53 lines.
- `tl.vmap(tl.jacfwd(tl.jacrev(f)))` raised a `CompileError` (the jacfwd's function,
  the Python `jacobian(*args)` made by `tl.jacrev`, has no parameters compiled code
  can give it a tangent for): the Jacobian compiled code calls is written with the
  parameters of the inner Jacobian's compiled function (`jacobians.compiled_jacobian`)."""

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


def field(x: Any) -> Any:
    return np.sin(x) * x + np.roll(x, 1) ** 2 * 0.5


def jacfwd_of_jacrev(x: Any) -> Any:
    return tl.jacfwd(tl.jacrev(field))(x)


def field_second_derivatives(x: np.ndarray) -> np.ndarray:
    """d2 field_i / dx_j dx_k, by hand: field_i = sin(x_i) x_i + x_(i-1)^2 / 2."""
    n = len(x)
    t = np.zeros((n, n, n))
    for i in range(n):
        t[i, i, i] = 2.0 * np.cos(x[i]) - x[i] * np.sin(x[i])
        t[i, i - 1, i - 1] += 1.0
    return t


def test_jacfwd_of_jacrev_inside_jit_is_batched_for_kinds(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    # (the generated code's size: 36,000 lines when the jvp differentiated the inner
    # tl.vmap's run-time batching rules)
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    jitted = tl.jit(jacfwd_of_jacrev)
    for x in XS:
        np.testing.assert_allclose(jitted(x), field_second_derivatives(x), rtol=1e-12,
                                   atol=1e-14)
    assert len(jitted._get((XS[0],)).source.splitlines()) < 500


def test_vmap_of_jacfwd_of_jacrev(monkeypatch: pytest.MonkeyPatch) -> None:
    # (a CompileError before: the Python `jacobian(*args)` of tl.jacrev compiled. The
    # optimizer on only: off, the per-element fallback of the inner Jacobians' batching
    # rules compiles for minutes)
    monkeypatch.delenv("TAPELESS_OPTIMIZE", raising=False)
    got = tl.vmap(tl.jacfwd(tl.jacrev(field)))(XS)
    jitted = tl.jit(jacfwd_of_jacrev)
    np.testing.assert_allclose(got, np.stack([jitted(x) for x in XS]), rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_allclose(got, np.stack([field_second_derivatives(x) for x in XS]),
                               rtol=1e-12, atol=1e-14)
    # (f: d2 f_i / dx_j dx_k = -sin(x_i) x_0 [i=j=k] + cos(x_i) ([j=i, k=0] + [j=0, k=i]))
    want_f = np.zeros((len(XS), 3, 3, 3))
    for b, x in enumerate(XS):
        for i in range(3):
            want_f[b, i, i, i] -= np.sin(x[i]) * x[0]
            want_f[b, i, i, 0] += np.cos(x[i])
            want_f[b, i, 0, i] += np.cos(x[i])
    np.testing.assert_allclose(tl.vmap(tl.jacfwd(tl.jacrev(f)))(XS), want_f, rtol=1e-12,
                               atol=1e-14)
