"""Loops spelled in more than one way differentiate alike (issue 12): `for k in
reversed(range(...))` is a `for_range` over ints, as `range(n - 1, -1, -1)` is, so its
derivative code is that of a forward range (the values against CPython, finite
differences and autograd, first and second order, and the shape of the code); and a
backward loop's element reads `A[i, j]` add into one buffer in place, two at a time,
with the same sums as `scatter_add` (`runtime.scatter_add_known`)."""

from __future__ import annotations

import math

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from gradcheck import elementwise_fd

import tapeless as tl
from tapeless import runtime as rt

# --- reversed ranges -------------------------------------------------------------------


def horner_reversed(c, x):
    """A polynomial by Horner's rule, the coefficients visited from the last."""
    acc = 0.0 * x
    for k in reversed(range(c.shape[0])):
        acc = acc * x + c[k]
    return np.sum(acc * acc)


def horner_countdown(c, x):
    acc = 0.0 * x
    for k in range(c.shape[0] - 1, -1, -1):
        acc = acc * x + c[k]
    return np.sum(acc * acc)


def horner_forward(c, x):
    """The same sum with the coefficients reversed by indexing: a forward range."""
    n = c.shape[0]
    acc = 0.0 * x
    for k in range(n):
        acc = acc * x + c[n - 1 - k]
    return np.sum(acc * acc)


def discounted(r, gamma, start, stop, step):
    """A return accumulated backwards over a strided window of rewards (numbers)."""
    total = 0.0
    for t in reversed(range(start, stop, step)):
        total = r[t] + gamma * total
    return total * total


def backward_sweep(w, x, n):
    """A scalar recurrence run from the last step to the first, with a `break`."""
    s = x
    for k in reversed(range(1, n)):
        s = math.sin(w * s) + 0.1 * k * s
        if s > 50.0:
            break
    return s * w


def _ag_horner(c, x):
    acc = 0.0 * x
    for k in reversed(range(c.shape[0])):
        acc = acc * x + c[k]
    return anp.sum(acc * acc)


C = np.array([0.3, -0.2, 0.5, 0.1, -0.4, 0.25])
X = np.linspace(-1.2, 1.1, 9)


@pytest.mark.parametrize("f", [horner_reversed, horner_countdown, horner_forward])
def test_reversed_range_gradient_matches_autograd_and_fd(f):
    assert tl.jit(f)(C, X) == pytest.approx(f(C, X), rel=1e-13)
    g = tl.grad(f, argnums=(0, 1))(C, X)
    want = autograd.grad(_ag_horner, argnum=(0, 1))(C, X)
    np.testing.assert_allclose(g[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(g[1], want[1], rtol=1e-12)
    np.testing.assert_allclose(g[0], elementwise_fd(lambda c: f(c, X), C), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("window", [(0, 10, 1), (2, 10, 3), (9, -1, -2), (8, 1, -1),
                                    (3, 3, 1), (5, 2, 1), (2, 9, -2), (1, 10, 4)])
def test_reversed_strided_range(window):
    """Every step sign and size, empty windows included: the visited indices are
    CPython's (the values agree) and the gradient is autograd's."""
    r = np.linspace(0.5, 1.4, 10) ** 2
    args = (r, 0.9, *window)
    assert tl.jit(discounted)(*args) == pytest.approx(discounted(*args), rel=1e-13, abs=0)
    g = tl.grad(discounted, argnums=(0, 1))(*args)
    want = autograd.grad(discounted, argnum=(0, 1))(*args)
    np.testing.assert_allclose(g[0], want[0], rtol=1e-12, atol=1e-300)
    assert g[1] == pytest.approx(want[1], rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("n", [0, 1, 5, 12])
def test_reversed_range_with_break(n):
    w, x = 0.7, 0.3
    assert tl.jit(backward_sweep)(w, x, n) == pytest.approx(backward_sweep(w, x, n),
                                                            rel=1e-13)
    g = tl.grad(backward_sweep, argnums=(0, 1))(w, x, n)
    fd_w = (backward_sweep(w + 1e-6, x, n) - backward_sweep(w - 1e-6, x, n)) / 2e-6
    fd_x = (backward_sweep(w, x + 1e-6, n) - backward_sweep(w, x - 1e-6, n)) / 2e-6
    assert g[0] == pytest.approx(fd_w, rel=1e-6, abs=1e-9)
    assert g[1] == pytest.approx(fd_x, rel=1e-6, abs=1e-9)


def test_reversed_range_second_order():
    """The Hessian of the reversed Horner loop in the coefficients is autograd's."""
    want = autograd.hessian(lambda c: _ag_horner(c, X))(C)
    h = tl.hessian(lambda cc: horner_reversed(cc, X))(C)  # (forward over reverse)
    np.testing.assert_allclose(h, want, rtol=1e-11, atol=1e-12)
    # Reverse over reverse: one Hessian-vector product per column.
    def hvp(c, v):
        return np.sum(tl.grad(lambda cc: horner_reversed(cc, X))(c) * v)

    for i in range(C.shape[0]):
        e = np.zeros_like(C)
        e[i] = 1.0
        np.testing.assert_allclose(tl.grad(hvp)(C, e), want[:, i], rtol=1e-11, atol=1e-12)
    # A derivative nested inside the loop's function: grad of (f + |grad f|^2).
    def inner(c):
        d = tl.grad(lambda cc: horner_reversed(cc, X))(c)
        return horner_reversed(c, X) + np.sum(d * d)

    def ag_inner(c):
        d = autograd.grad(lambda cc: _ag_horner(cc, X))(c)
        return _ag_horner(c, X) + anp.sum(d * d)

    np.testing.assert_allclose(tl.grad(inner)(C), autograd.grad(ag_inner)(C), rtol=1e-11)


def test_reversed_range_code_is_a_forward_range():
    """The reversed loop's gradient is the count-down loop's: a `range` with a step of
    -1, the element read by an int (no generic sequence, no run-time unbroadcast)."""
    rev = tl.grad(horner_reversed).source_for(C, X)
    down = tl.grad(horner_countdown).source_for(C, X)
    assert rev.replace("horner_reversed", "f") == down.replace("horner_countdown", "f")
    for text in ("unbroadcast", "as_sequence", "isinstance", "tuple("):
        assert text not in rev, rev

    def scalar(a, n):
        s = 0.0
        for k in reversed(range(n)):
            s = s * a + k
        return s

    src = tl.grad(scalar).source_for(1.1, 5)
    assert "_rt." not in src.replace("_rt.check_scalar_output", ""), src
    # s = 4a^4 + 3a^3 + 2a^2 + a, so ds/da = 16a^3 + 9a^2 + 4a + 1.
    a = 1.1
    assert tl.grad(scalar)(a, 5) == pytest.approx(16 * a ** 3 + 9 * a ** 2 + 4 * a + 1,
                                                  rel=1e-13)


def test_reversed_of_a_local_named_reversed_is_not_rewritten():
    """`reversed` bound to something else is called as it is."""
    def reversed(r):  # noqa: A001 - shadowing the builtin is the point
        return [x for x in r]

    def f(a):
        s = 0.0
        for k in reversed(range(4)):
            s = s * a + k
        return s

    assert tl.jit(f)(2.0) == f(2.0)
    assert tl.grad(f)(2.0) == pytest.approx((f(2.0 + 1e-6) - f(2.0 - 1e-6)) / 2e-6,
                                            rel=1e-7)


# --- element reads accumulated in place ------------------------------------------------


def trace_hops(A, stride):
    """Two reads of a matrix per iteration, the second at a hop that may land on the
    first (then one element gets both pieces)."""
    n = A.shape[0]
    total = 0.0
    for i in range(n):
        total = total + A[i, i] * A[i, (stride * i) % n]
    return total


def trace_hops_reversed(A, stride):
    n = A.shape[0]
    total = 0.0
    for i in reversed(range(n)):
        total = total + A[(stride * i) % n, i] * A[i, i] * 0.5
    return total


@pytest.mark.parametrize("stride", [0, 1, 3, 7])
def test_two_reads_per_iteration(stride):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((20, 20))
    for f, scale in ((trace_hops, 1.0), (trace_hops_reversed, 0.5)):
        g = tl.grad(f)(A, stride)
        want = np.zeros_like(A)
        for i in range(20):
            j = (stride * i) % 20
            if f is trace_hops:
                want[i, i] += A[i, j]
                want[i, j] += A[i, i]
            else:
                want[j, i] += A[i, i] * scale
                want[i, i] += A[j, i] * scale
        np.testing.assert_allclose(g, want, rtol=1e-14, atol=1e-15)


def test_scatter_add_known_sums_like_scatter_add():
    """The two-piece path gives `scatter_add`'s sums to the bit, an index given twice
    included, into arrays, and lists keep their own path."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 6))
    for indices in [((1, 2), (3, 4)), ((2, 2), (2, 2)), (1, 1), (0, 5), ((0, 0),),
                    (4,), ((1, 1), (1, 1), (2, 3))]:
        ds = tuple(rng.standard_normal(np.shape(x[i])) if isinstance(i, int) else
                   float(rng.standard_normal()) for i in indices)
        fast = rt.ZERO
        slow = rt.ZERO
        for _ in range(3):
            fast = rt.scatter_add_known(fast, x, indices, ds)
            slow = rt.scatter_add(slow, x, indices, ds)
        np.testing.assert_array_equal(rt.to_structure(fast, x), rt.to_structure(slow, x))
    xs = [1.0, 2.0, 3.0]
    acc = rt.scatter_add_known(rt.ZERO, xs, (1, 1), (0.5, 0.25))
    assert acc[1] == 0.75 and acc[0] is rt.ZERO


# --- tuple loop state split into one slot per item -------------------------------------


def orbit(a, b, w):
    """A rotation-and-decay map on a pair kept as a tuple (items read by index), run by
    a `while` loop whose condition reads an item."""
    s = (a, b)
    n = 0
    while n < 30 and s[0] > -5.0:
        s = (s[0] * math.cos(w) - s[1] * math.sin(w) * 0.9, s[0] * math.sin(w) + 0.95 * s[1])
        n += 1
    return s[0] * s[0] + 3.0 * s[1]


def ag_orbit(a, b, w):
    s = (a, b)
    n = 0
    while n < 30 and s[0] > -5.0:
        s = (s[0] * anp.cos(w) - s[1] * anp.sin(w) * 0.9, s[0] * anp.sin(w) + 0.95 * s[1])
        n += 1
    return s[0] * s[0] + 3.0 * s[1]


def hop(state, k):
    x, v = state
    return x + 0.1 * v, v - 0.1 * k * x - 0.02 * v


def spring_energy(k, x0):
    """A tuple state advanced by a helper (J copies its body into the loop)."""
    state = (x0, 0.0)
    prev = state
    for _ in range(25):
        prev = state
        state = hop(state, k)
    return state[0] * prev[1] + k * state[0] ** 2


def ag_spring_energy(k, x0):
    state = (x0, 0.0)
    prev = state
    for _ in range(25):
        prev = state
        x, v = state
        state = (x + 0.1 * v, v - 0.1 * k * x - 0.02 * v)
    return state[0] * prev[1] + k * state[0] ** 2


def tuned_spring(k0, x0):
    """Descent on k, each step a derivative of the tuple-state loop: its second-order
    code has a tuple sensitivity as loop state."""
    k = k0
    for _ in range(3):
        k = k - 0.05 * tl.grad(spring_energy)(k, x0)
    return spring_energy(k, x0) * x0


def ag_tuned_spring(k0, x0):
    k = k0
    for _ in range(3):
        k = k - 0.05 * autograd.grad(ag_spring_energy)(k, x0)
    return ag_spring_energy(k, x0) * x0


def state_passed_whole(a, b):
    """Tuple state that the body also passes whole to a function: kept one slot."""
    s = (a, b)
    for i in range(6):
        s = hop(s, 0.5 + 0.1 * i) if s[0] < 10.0 else (s[0] * 0.5, s[1])
    return s[0] + s[1] * a


@pytest.mark.parametrize("args", [(1.0, 0.5, 0.3), (0.2, -1.5, 1.1), (4.0, 2.0, 2.5)])
def test_tuple_state_first_order(args):
    assert tl.jit(orbit)(*args) == pytest.approx(orbit(*args), rel=1e-13)
    got = tl.grad(orbit, argnums=(0, 1, 2))(*args)
    want = autograd.grad(ag_orbit, argnum=(0, 1, 2))(*args)
    np.testing.assert_allclose(got, want, rtol=1e-11)
    got = tl.grad(spring_energy, argnums=(0, 1))(args[0], args[1])
    want = autograd.grad(ag_spring_energy, argnum=(0, 1))(args[0], args[1])
    np.testing.assert_allclose(got, want, rtol=1e-11)


def test_tuple_state_split_in_the_code():
    """The pair is two loop variables: no tuple is built and indexed each step."""
    src = tl.grad(orbit, argnums=(0, 1, 2)).source_for(1.0, 0.5, 0.3)
    assert "s[0]" not in src and "s[1]" not in src, src


@pytest.mark.parametrize("args", [(0.8, 1.2), (1.5, -0.7)])
def test_tuple_state_nested_derivative(args):
    """Second order through a tuple state: the gradient of a function that takes
    derivatives of the loop, against autograd's nested derivative and finite
    differences."""
    assert tl.jit(tuned_spring)(*args) == pytest.approx(ag_tuned_spring(*args), rel=1e-12)
    got = tl.grad(tuned_spring, argnums=(0, 1))(*args)
    want = autograd.grad(ag_tuned_spring, argnum=(0, 1))(*args)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    eps = 1e-6
    fd = (tuned_spring(args[0] + eps, args[1]) - tuned_spring(args[0] - eps, args[1])) / 2 / eps
    assert got[0] == pytest.approx(fd, rel=1e-6)
    # Forward over reverse agrees too.
    h = tl.hessian(ag_free_spring := (lambda kx: spring_energy(kx[0], kx[1])))(
        np.array(args))
    want_h = autograd.hessian(lambda kx: ag_spring_energy(kx[0], kx[1]))(np.array(args))
    np.testing.assert_allclose(h, want_h, rtol=1e-10)
    assert ag_free_spring is not None


def glide_step(s):
    x, h, vx, vh = s
    return x + 0.02 * vx, h + 0.02 * vh, vx * 0.995, vh - 0.2


def glide(v, angle):
    """How far a glider launched at `angle` gets before it reaches the ground."""
    s = (0.0, 0.0, v * math.cos(angle), v * math.sin(angle))
    while s[1] >= 0.0:
        s = glide_step(s)
    return s[0] - 0.5 * s[1]


def aim_glider(v, target):
    angle = 0.5
    for _ in range(3):
        angle = angle - 0.001 * tl.grad(lambda a: (glide(v, a) - target) ** 2)(angle)
    return glide(v, angle) * v


def test_tuple_state_second_order_code_has_no_tuple_helpers():
    """In the gradient of a nested derivative of a `while` loop over a 4-item tuple
    state, the loop that runs backward over the inner gradient's backward loop keeps
    its tuple sensitivity as one slot per item (no `sens_index` of it per step), and
    the gradient is that of finite differences of CPython's run (with the nested
    derivative by autograd)."""
    src = tl.grad(aim_glider).source_for(3.0, 1.0)
    assert "sens_index" not in src, src

    def ag_glide(v, angle):
        s = (0.0, 0.0, v * anp.cos(angle), v * anp.sin(angle))
        while s[1] >= 0.0:
            x, h, vx, vh = s
            s = (x + 0.02 * vx, h + 0.02 * vh, vx * 0.995, vh - 0.2)
        return s[0] - 0.5 * s[1]

    def ag_aim(v, target):
        angle = 0.5
        for _ in range(3):
            angle = angle - 0.001 * autograd.grad(
                lambda a: (ag_glide(v, a) - target) ** 2)(angle)
        return ag_glide(v, angle) * v

    for v, target in [(3.0, 1.0), (2.5, 0.2)]:
        assert tl.jit(aim_glider)(v, target) == pytest.approx(ag_aim(v, target), rel=1e-13)
        got = tl.grad(aim_glider, argnums=(0, 1))(v, target)
        np.testing.assert_allclose(got, autograd.grad(ag_aim, argnum=(0, 1))(v, target),
                                   rtol=1e-11)


def test_tuple_state_passed_whole():
    for a, b in [(1.0, 2.0), (12.0, 1.0), (-3.0, 0.5)]:
        assert tl.jit(state_passed_whole)(a, b) == pytest.approx(state_passed_whole(a, b),
                                                                 rel=1e-13)
        g = tl.grad(state_passed_whole, argnums=(0, 1))(a, b)
        eps = 1e-6
        fd0 = (state_passed_whole(a + eps, b) - state_passed_whole(a - eps, b)) / 2 / eps
        fd1 = (state_passed_whole(a, b + eps) - state_passed_whole(a, b - eps)) / 2 / eps
        assert g[0] == pytest.approx(fd0, rel=1e-6, abs=1e-9)
        assert g[1] == pytest.approx(fd1, rel=1e-6, abs=1e-9)
