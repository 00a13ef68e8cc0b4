"""What a lifted recursive backpropagator's records keep (`opt/lift.py`, issue 12): only
the items that something reads (`prune_tuples`: a saved sensitivity placeholder ZERO, a
value only a rule's other case would read, and what a lifted `B` gives back that no one
reads are dropped; a tuple left with one item is that item), and no `sens_of` on a
sensitivity every call gives as a value (`_values_given`). Checked against autograd,
finite differences and CPython: second order through the recursion, a hessian, mutual
recursion, recursion depths that change between calls, both spellings of the recursive
determinant (the comprehension's also converts the closure its sign's `if` saves per
term, `convert_closures`); the memory the determinant's gradient keeps, with and
without them; and the analysis's refusals on hand-made graphs."""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from peak_memory import peak_bytes
from research_programs import det_laplace, det_laplace_filter, walk_energy

import tapeless as tl
from tapeless.ir.nodes import Apply, Constant, Graph, prim_of
from tapeless.opt import lift, unwind
from tapeless.primitives import PRIMITIVES as P
from tapeless.runtime import ZERO


def _data(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _anp_walk(A):
    n = A.shape[0]
    return sum(A[i, i] * A[i, (3 * i) % n] for i in range(n))


def _functions(src: str) -> dict[str, str]:
    """The generated module's functions, by name, as source."""
    out: dict[str, str] = {}
    for block in ("\n" + src).split("\ndef ")[1:]:
        out[block.split("(", 1)[0]] = block
    return out


def test_walk_record_keeps_what_its_backward_pass_reads(monkeypatch) -> None:
    A = _data((9, 9), seed=1)
    # (the records as lifted, read by the backward pass: not fused away, `opt.unwind`)
    monkeypatch.setattr(unwind, "_fuse_all", lambda *_: 0)
    g = tl.grad(walk_energy)
    fns = _functions(g.source_for(A))
    assert "def B_walk(record, dout)" in g.source_for(A)
    # (no sensitivity placeholder saved per call, no test of the incoming sensitivity)
    assert "ZERO" not in fns["J_walk"], fns["J_walk"]
    assert "sens_of" not in fns["B_walk"], fns["B_walk"]
    np.testing.assert_allclose(g(A), autograd.grad(_anp_walk)(A), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fn", [det_laplace, det_laplace_filter])
def test_determinant_both_spellings_at_several_sizes(fn) -> None:
    g = tl.grad(fn)
    for n in (1, 2, 3, 5, 4, 1):  # (the depth changes between calls of one gradient)
        A = _data((n, n), seed=n)
        want = np.linalg.det(A) * np.linalg.inv(A).T
        np.testing.assert_allclose(g(A), want, rtol=1e-9, atol=1e-12)
    src = g.source_for(_data((5, 5)))
    assert "def B_det_minor" in src, src


@pytest.mark.parametrize("fn", [det_laplace, det_laplace_filter])
def test_pruned_records_hold_less(fn, monkeypatch) -> None:
    # (the records kept where the backward pass is not fused into the forward one)
    monkeypatch.setattr(unwind, "FUSE_VALUES", False)
    A = _data((6, 6), seed=6)
    pruned = tl.grad(fn)
    want = np.linalg.det(A) * np.linalg.inv(A).T
    np.testing.assert_allclose(pruned(A), want, rtol=1e-9, atol=1e-12)
    small = peak_bytes(pruned, A)
    monkeypatch.setattr(lift, "prune_tuples", lambda root: 0)
    monkeypatch.setattr(lift, "convert_closures", lambda root: 0)
    whole = tl.grad(fn)
    np.testing.assert_allclose(whole(A), want, rtol=1e-9, atol=1e-12)
    big = peak_bytes(whole, A)
    assert small < 0.9 * big, (small, big)


def test_branch_backpropagators_become_records() -> None:
    # (the comprehension's spelling saves, per term, the backpropagator of its sign's
    # `if`: a module function and a tuple of what it reads, no closure with defaults)
    g = tl.grad(det_laplace_filter)
    A = _data((4, 4), seed=4)
    fns = _functions(g.source_for(A))
    branches = [f for name, f in fns.items() if name.startswith("B_if")]
    assert branches, g.source_for(A)
    assert all("*," not in f.split("\n")[0] for f in branches), branches
    np.testing.assert_allclose(g(A), np.linalg.det(A) * np.linalg.inv(A).T, rtol=1e-9)


def test_hessian_through_the_recursion_against_autograd() -> None:
    A = _data((4, 4), seed=2)
    want = autograd.hessian(_anp_walk)(A)
    np.testing.assert_allclose(tl.hessian(walk_energy)(A), want, rtol=1e-12, atol=1e-12)


def chain(x, n):
    """A recursion whose value goes through a tuple with constant and unread items."""
    if n == 0:
        return (x, 0.0, None)
    v, w, tag = chain(np.sin(x) * 1.3, n - 1)
    return (v * x + w, 2.0, tag if tag is not None else None)


def chain_energy(x, n):
    return chain(x, n)[0]


def _chain_fd(x, n, eps=1e-6):
    return (chain_energy(x + eps, n) - chain_energy(x - eps, n)) / (2 * eps)


def test_tuples_in_the_recursion_against_cpython_and_finite_differences() -> None:
    g = tl.grad(chain_energy)
    gg = tl.grad(tl.grad(chain_energy))
    for x, n in ((0.3, 0), (0.7, 3), (-1.2, 6), (0.7, 2)):
        assert tl.jit(chain_energy)(x, n) == pytest.approx(chain_energy(x, n), rel=1e-14)
        assert g(x, n) == pytest.approx(_chain_fd(x, n), rel=1e-7, abs=1e-9)
        second = (g(x + 1e-5, n) - g(x - 1e-5, n)) / 2e-5
        assert gg(x, n) == pytest.approx(second, rel=1e-5, abs=1e-7)


def ping(A, i):
    if i >= A.shape[0]:
        return 0.0
    return A[i, 0] * pong(A, i + 1)


def pong(A, i):
    if i >= A.shape[0]:
        return 1.0
    return np.cos(A[i, 1]) + ping(A, i + 1)


def ping_energy(A):
    return ping(A, 0)


def test_mutual_recursion_reading_elements_against_autograd() -> None:
    def a_ping(A, i):
        return 0.0 if i >= A.shape[0] else A[i, 0] * a_pong(A, i + 1)

    def a_pong(A, i):
        return 1.0 if i >= A.shape[0] else anp.cos(A[i, 1]) + a_ping(A, i + 1)

    g = tl.grad(ping_energy)
    for n in (1, 2, 5, 8, 3):
        A = _data((n, 3), seed=n)
        np.testing.assert_allclose(g(A), autograd.grad(lambda A: a_ping(A, 0))(A),
                                   rtol=1e-12, atol=1e-12)


def sometimes(x, n):
    """The recursive call's sensitivity is ZERO on odd levels (its value is unused
    there): `_values_given` must not take it for a value."""
    if n == 0:
        return x * x
    inner = sometimes(x * 0.5, n - 1)
    return inner * x if n % 2 == 0 else x + 1.0


def test_a_sensitivity_that_may_be_zero_keeps_its_test() -> None:
    g = tl.grad(sometimes)
    for x, n in ((0.8, 0), (0.8, 1), (1.3, 2), (-0.6, 4), (0.9, 5)):
        eps = 1e-6
        fd = (sometimes(x + eps, n) - sometimes(x - eps, n)) / (2 * eps)
        assert g(x, n) == pytest.approx(fd, rel=1e-7, abs=1e-9)


# --- prune_tuples on hand-made graphs ---------------------------------------------------


def _tuple_program(use: str) -> tuple[Graph, Apply]:
    """root(x) makes t = (x, ZERO, x * 2.0) and reads t[0] + t[1]; `use` adds another use
    of t: "" none, "is" tests `t is None`, "list" puts t in a list, "index" reads t at
    an index known only at run time."""
    from tapeless.ir.edit import set_output

    root = Graph("root")
    x = root.add_parameter("x")
    k = root.add_parameter("k")
    t = root.apply(P["make_tuple"], x, Constant(ZERO), root.apply(P["mul"], x, 2.0))
    out = root.apply(P["add"], root.apply(P["tuple_getitem"], t, 0),
                     root.apply(P["tuple_getitem"], t, 1))
    if use == "is":
        out = root.apply(P["make_tuple"], out, root.apply(P["is_"], t, None))
    elif use == "list":
        out = root.apply(P["make_tuple"], out, root.apply(P["make_list"], t))
    elif use == "index":
        out = root.apply(P["make_tuple"], out, root.apply(P["getitem"], t, k))
    set_output(root, out)
    return root, t


def test_prune_tuples_reads_constants_and_unwraps() -> None:
    root, t = _tuple_program("")
    assert lift.prune_tuples(root) == 1
    out = root.output
    assert isinstance(out, Apply) and prim_of(out) is P["add"]
    assert out.inputs[1] is root.parameters[0]  # (t[0] is x: t kept one item)
    assert isinstance(out.inputs[2], Constant) and out.inputs[2].value is ZERO


@pytest.mark.parametrize("use", ["is", "list", "index"])
def test_prune_tuples_leaves_tuples_it_cannot_follow(use: str) -> None:
    root, t = _tuple_program(use)
    assert lift.prune_tuples(root) == 0
    assert len(t.inputs) == 4
