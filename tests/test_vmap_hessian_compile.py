"""`tl.vmap(tl.hessian(f))` and `tl.grad` of a function calling it (issue 14: vmap
composable with every derivative) compile to lean programs.

The Hessian inside compiled code is `tl.vmap` of the jvp of the gradient over the rows of
the identity (`frontend/jacobians.py`). Kind inference did not know `np.eye(n)`,
`np.reshape` or `np.size`, so the inner `tl.vmap` was batched without kinds (its rules
deciding shapes at run time): `vmap(hessian(f))` made some 72,000 graphs (26 s, then a
`RaggedBatch` and the per-element fallback), and `grad` of it batched the program as
parsed for reverse mode (15,000 graphs that J never finished). Now the inner `tl.vmap`
is batched for one column's kinds, never first without them, and reverse mode
differentiates the optimized program with the optimizer's own steps written as the code
they stand for (`vmap_api._differentiable_steps`). Results against a loop of
`tl.hessian` and against JAX (1e-12); sizes as counts of graphs made, not times."""

import numpy as np
import pytest

import tapeless as tl
from tapeless import vmap_api
from tapeless.ir import nodes


def _f(x):
    return np.sin(x[0]) * x[1] + x[0] ** 2 * np.sum(x * x)


def _g(x):
    return np.cos(x[1]) * np.sum(x ** 3) + x[0] * x[2]


@pytest.fixture
def graphs_made(monkeypatch):
    """How many IR graphs are made while the test runs."""
    count = [0]
    init = nodes.Graph.__init__

    def counting(self, *args, **kwargs):
        count[0] += 1
        init(self, *args, **kwargs)

    monkeypatch.setattr(nodes.Graph, "__init__", counting)
    return count


@pytest.fixture
def no_per_element(monkeypatch):
    """The batched code must run: no fallback to one call per element."""
    def refuse(self, args):
        raise AssertionError("vmap fell back to one call per element")

    monkeypatch.setattr(vmap_api.Vmapped, "_each_element", refuse)


def _jax_f(jnp, fn):
    if fn is _f:
        return lambda x: jnp.sin(x[0]) * x[1] + x[0] ** 2 * jnp.sum(x * x)
    return lambda x: jnp.cos(x[1]) * jnp.sum(x ** 3) + x[0] * x[2]


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("fn", [_f, _g])
def test_vmap_hessian_matches_a_loop_and_jax(n, fn, graphs_made, no_per_element):
    xs = np.random.RandomState(n).randn(8, n)
    got = tl.vmap(tl.hessian(fn))(xs)
    made = graphs_made[0]
    loop = np.stack([tl.hessian(fn)(x) for x in xs])
    assert got.shape == (8, n, n)
    np.testing.assert_allclose(got, loop, rtol=1e-12, atol=1e-12)
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    want = np.asarray(jax.vmap(jax.hessian(_jax_f(jax.numpy, fn)))(xs))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # (72,660 graphs before: the inner vmap batched without kinds, then the per-element
    # fallback; about 4,600 now)
    assert made < 15000, made


@pytest.mark.parametrize("n", [3, 5])
def test_grad_of_vmap_hessian_finishes_and_matches_jax(n, graphs_made):
    xs = np.random.RandomState(10 + n).randn(8, n)
    got = tl.grad(lambda z: np.sum(tl.vmap(tl.hessian(_f))(z)))(xs)
    made = graphs_made[0]
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    want = np.asarray(jax.grad(
        lambda z: jnp.sum(jax.vmap(jax.hessian(_jax_f(jnp, _f)))(z)))(xs))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # (never finished before: 37,000 graphs and more; about 10,000 now)
    assert made < 30000, made


def test_jit_of_vmap_hessian_and_weighted_grad():
    """The batched Hessian inside compiled code, weighted so that every entry's
    derivative counts, against finite differences of the loop of `tl.hessian`."""
    xs = np.random.RandomState(3).randn(4, 3)
    w = np.random.RandomState(4).randn(4, 3, 3)

    def loss(z):
        return np.sum(w * tl.vmap(tl.hessian(_g))(z))

    got = tl.grad(loss)(xs)
    np.testing.assert_allclose(tl.jit(lambda z: tl.vmap(tl.hessian(_g))(z))(xs),
                               np.stack([tl.hessian(_g)(x) for x in xs]),
                               rtol=1e-12, atol=1e-12)

    def by_loop(z):
        return float(np.sum(w * np.stack([tl.hessian(_g)(x) for x in z])))

    eps = 1e-6
    fd = np.zeros_like(xs)
    for i in np.ndindex(*xs.shape):
        e = np.zeros_like(xs)
        e[i] = eps
        fd[i] = (by_loop(xs + e) - by_loop(xs - e)) / (2 * eps)
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-6)


def test_kinds_of_identity_rows():
    """Kind inference knows `np.size`, `np.eye` and `np.reshape` of known shapes (the
    rows of the identity a Jacobian maps over)."""
    from tapeless.api import graph_of
    from tapeless.ir.clone import copy_module
    from tapeless.ir.edit import set_kind
    from tapeless.ir.nodes import graph_nodes, prim_of, reachable_graphs
    from tapeless.opt.kinds import INT, array, int_value, kind, shape_of, value_kind
    from tapeless.opt.loop_facts import LoopFacts

    def rows(x):
        n = np.size(x)
        return np.reshape(np.eye(n), (n,) + np.shape(x)), np.reshape(x, (3, 2)), \
            np.eye(n, 2 * n, 1), np.reshape(x, (4, 4))

    g = copy_module(graph_of(rows))
    set_kind(g.parameters[0], value_kind(np.zeros((2, 3))))
    facts = LoopFacts(g)
    found = {}
    for h in reachable_graphs(g):
        for node in graph_nodes(h):
            p = prim_of(node)
            if p is not None:
                found.setdefault(p.name, []).append(node)
    size = found["np.size"][0]
    assert kind(size, facts) == INT and int_value(size, facts) == 6
    assert [kind(e, facts) for e in found["np.eye"]] == [array("f8", (6, 6)),
                                                         array("f8", (6, 12))]
    assert [kind(r, facts) for r in found["np.reshape"][:2]] == [
        array("f8", (6, 2, 3)), array("f8", (3, 2))]
    assert shape_of(kind(found["np.reshape"][2], facts)) is None  # (6 elements: not 4 x 4)
