"""`tl.vmap`: batched results equal a loop over the batch, through branches, loops and
recursion that diverge across the batch, and composed with `grad` and `jit`."""

from __future__ import annotations

import numpy as np
import pytest
import vmap_programs as vp

import tapeless as tl
from tapeless.ad.batch import VmapError
from tapeless.primitives import PRIMITIVES

RNG = np.random.default_rng(0)


def stacked(fn, *columns):
    return np.stack([np.asarray(fn(*args)) for args in zip(*columns, strict=True)])


def test_matmul_with_unbatched_weights():
    x, w = RNG.normal(size=(5, 3)), RNG.normal(size=(4, 3))
    out = tl.vmap(vp.affine_tanh, in_axes=(0, None))(x, w)
    np.testing.assert_allclose(out, stacked(lambda a: vp.affine_tanh(a, w), x), rtol=1e-12)


def test_branch_diverging_across_the_batch():
    xs = np.array([-2.0, -0.5, 0.3, 1.0, 4.0])
    np.testing.assert_allclose(tl.vmap(vp.branch)(xs), stacked(vp.branch, xs), rtol=1e-12)


def test_branch_taken_by_no_element_is_skipped():
    xs = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(tl.vmap(vp.branch)(xs), stacked(vp.branch, xs), rtol=1e-12)


def test_while_loop_with_per_element_trip_counts():
    xs = np.array([0.5, 3.0, 17.0, 1000.0])
    np.testing.assert_allclose(tl.vmap(vp.halve_until_small)(xs),
                               stacked(vp.halve_until_small, xs), rtol=1e-12)


def test_recursion_whose_depth_differs():
    ns, xs = np.array([0, 1, 2, 3, 5]), RNG.normal(size=5)
    np.testing.assert_allclose(tl.vmap(vp.scaled_factorial)(ns, xs),
                               stacked(vp.scaled_factorial, ns, xs), rtol=1e-12)


def test_list_built_in_a_loop():
    xs = RNG.normal(size=4)
    np.testing.assert_allclose(tl.vmap(vp.list_of_multiples)(xs),
                               stacked(vp.list_of_multiples, xs), rtol=1e-12)


def test_newton_iterations_to_a_per_element_tolerance():
    a = np.abs(RNG.normal(size=50)) * 10 + 0.1
    np.testing.assert_allclose(tl.vmap(vp.newton_sqrt)(a), stacked(vp.newton_sqrt, a),
                               rtol=1e-12)


def test_in_axes_out_axes_and_tuples():
    w, xs, ys = RNG.normal(size=(4, 3)), RNG.normal(size=(6, 3)), RNG.normal(size=(6, 4))
    out = tl.vmap(vp.loss, in_axes=(None, 1, 0))(w, xs.T.copy(), ys)
    np.testing.assert_allclose(out, stacked(lambda x, y: vp.loss(w, x, y), xs, ys),
                               rtol=1e-12)
    a, b = RNG.normal(size=(3, 2)), RNG.normal(size=(3, 4))
    first, second = tl.vmap(vp.tuple_io, in_axes=((0, 0), None), out_axes=(0, 0))((a, b), 2.0)
    np.testing.assert_allclose(first, a * 2.0, rtol=1e-12)
    np.testing.assert_allclose(second, b.sum(axis=1) * 2.0, rtol=1e-12)


def test_reductions_and_linear_algebra():
    x = RNG.normal(size=(4, 3, 3))
    np.testing.assert_allclose(tl.vmap(vp.reductions)(x), stacked(vp.reductions, x),
                               rtol=1e-10)


def test_per_example_gradients():
    w, xs, ys = RNG.normal(size=(4, 3)), RNG.normal(size=(6, 3)), RNG.normal(size=(6, 4))
    out = tl.vmap(tl.grad(vp.loss), in_axes=(None, 0, 0))(w, xs, ys)
    expected = np.stack([tl.grad(vp.loss)(w, x, y) for x, y in zip(xs, ys, strict=True)])
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_per_example_gradients_of_an_mlp():
    n = 8
    params = (RNG.normal(size=(n, n)) / 8, RNG.normal(size=n), RNG.normal(size=(n, n)) / 8,
              RNG.normal(size=n))
    X = RNG.normal(size=(5, n))
    g = tl.grad(vp.mlp, argnums=(0, 1, 2, 3))
    out = tl.vmap(g, in_axes=(None, None, None, None, 0))(*params, X)
    loop = [g(*params, x) for x in X]
    for j, part in enumerate(out):
        np.testing.assert_allclose(part, np.stack([grads[j] for grads in loop]), rtol=1e-12)


def test_grad_inside_the_mapped_function():
    w, xs = RNG.normal(size=(4, 3)), RNG.normal(size=(5, 3))
    out = tl.vmap(vp.one_sgd_step, in_axes=(None, 0))(w, xs)
    np.testing.assert_allclose(out, stacked(lambda x: vp.one_sgd_step(w, x), xs), rtol=1e-12)


def test_jit_of_vmap():
    a = np.abs(RNG.normal(size=6)) + 0.1
    np.testing.assert_allclose(tl.jit(tl.vmap(vp.newton_sqrt))(a), stacked(vp.newton_sqrt, a),
                               rtol=1e-12)


def test_random_draw_under_a_batched_branch_is_refused():
    with pytest.raises(VmapError, match="differs across the batch"):
        tl.vmap(vp.draw_under_branch)(np.array([-1.0, 1.0]))


def test_mismatched_axis_lengths_are_refused():
    with pytest.raises(VmapError, match="different lengths"):
        tl.vmap(vp.loss)(np.ones((2, 4, 3)), np.ones((3, 3)), np.ones((3, 4)))


def test_every_primitive_has_a_batching_rule():
    missing = [name for name, p in PRIMITIVES.items() if p.batch_rule is None]
    assert missing == []


def test_grad_of_a_function_that_calls_vmap():
    def batched(w, xs, ys):
        return np.sum(tl.vmap(vp.loss, in_axes=(None, 0, 0))(w, xs, ys))

    w, xs, ys = RNG.normal(size=(4, 3)), RNG.normal(size=(6, 3)), RNG.normal(size=(6, 4))
    expected = sum(tl.grad(vp.loss)(w, x, y) for x, y in zip(xs, ys, strict=True))
    np.testing.assert_allclose(tl.grad(batched)(w, xs, ys), expected, rtol=1e-12)


def test_per_example_gradient_through_a_while_loop():
    a = np.abs(RNG.normal(size=5)) + 0.5
    out = tl.vmap(tl.grad(vp.newton_sqrt))(a)
    np.testing.assert_allclose(out, 0.5 / np.sqrt(a), rtol=1e-8)


def test_per_example_gradients_with_a_list_of_parameters():
    n = 6

    params = [RNG.normal(size=(n, n)) / 8, RNG.normal(size=n), RNG.normal(size=(n, n)) / 8,
              RNG.normal(size=n)]
    X = RNG.normal(size=(4, n))
    g = tl.grad(vp.mlp_list)
    out = tl.vmap(g, in_axes=(None, 0))(params, X)
    loop = [g(params, x) for x in X]
    for j, part in enumerate(out):
        np.testing.assert_allclose(part, np.stack([grads[j] for grads in loop]), rtol=1e-12)


def test_vmap_of_vmap():
    w = RNG.normal(size=(4, 3))
    xs, ys = RNG.normal(size=(2, 3, 3)), RNG.normal(size=(2, 3, 4))
    inner = tl.vmap(vp.loss, in_axes=(None, 0, 0))
    out = tl.vmap(inner, in_axes=(None, 0, 0))(w, xs, ys)
    expected = np.array([[vp.loss(w, x, y) for x, y in zip(X, Y, strict=True)]
                         for X, Y in zip(xs, ys, strict=True)])
    np.testing.assert_allclose(out, expected, rtol=1e-12)
