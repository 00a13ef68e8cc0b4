"""`tl.vmap` of a loop over layers of different widths that some elements leave early
(issue 14): the loop's state changes shape from trip to trip, and where the trip count
differs across the batch a value's shape differs across the batch (one batched array
cannot hold it). Batched where every element takes the same trips; else `tl.vmap`
called from Python runs per element (`batch_rules.RaggedBatch`), and `tl.grad` of a
function calling `tl.vmap` differentiates the function called on each element (it
raised `RaggedBatch` before); never `np.where` broadcasting a width-1 state against a
wider one."""

import numpy as np
import pytest

import tapeless as tl
from tapeless.ad.batch import VmapError
from tapeless.primitives.batch_rules import RaggedBatch

rng = np.random.default_rng(0)
# Widths 3 -> 4 -> 2 -> 3; the biases an array, a Python float, an array.
PARAMS = [(rng.normal(size=(3, 4)), rng.normal(size=4)),
          (rng.normal(size=(4, 2)), 0.5),
          (rng.normal(size=(2, 3)), rng.normal(size=3))]
XS = rng.normal(size=(6, 3))
YS = rng.normal(size=(6, 1))
INF = np.inf
# Per-element thresholds: the loop breaks after the first trip whose sum exceeds it.
PATTERNS = {
    "first": np.full(6, -INF),
    "second": None,  # (set below: above the first layer's sums, below the second's)
    "none": np.full(6, INF),
    "mixed": np.array([-INF, INF, -INF, INF, -INF, INF]),
}


def loss(params, x, y, t):
    h = x
    for W, b in params:
        h = np.tanh(h @ W + b)
        if np.sum(h) > t:
            break
    return np.sum((h[:1] - y) ** 2)


def forward(params, x, t):
    """The same loop, in a function the mapped function calls."""
    h = x
    for W, b in params:
        h = np.tanh(h @ W + b)
        if np.sum(h) > t:
            break
    return h


def trips(params, x, t):
    h, n = x, 0
    for W, b in params:
        h = np.tanh(h @ W + b)
        n += 1
        if np.sum(h) > t:
            break
    return n


def _second():
    # (a threshold per element between its first layer's sum and its second's, with
    # the first's below: such elements break on the second trip)
    out = []
    for x in XS:
        h1 = np.tanh(x @ PARAMS[0][0] + PARAMS[0][1])
        h2 = np.tanh(h1 @ PARAMS[1][0] + PARAMS[1][1])
        out.append(min(np.sum(h2), np.sum(h1) + 4.0) - 1e-3 if np.sum(h2) > np.sum(h1)
                   else INF)
    return np.array(out)


PATTERNS["second"] = _second()
PATTERNS["all_three"] = np.where(np.arange(6) % 3 == 0, -INF,
                                 np.where(np.arange(6) % 3 == 1, PATTERNS["second"], INF))


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_vmap_of_the_loop_equals_a_loop_over_the_batch(pattern):
    ts = PATTERNS[pattern]
    got = tl.vmap(loss, in_axes=(None, 0, 0, 0))(PARAMS, XS, YS, ts)
    want = [loss(PARAMS, XS[i], YS[i], ts[i]) for i in range(len(XS))]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_the_patterns_take_the_trips_they_name():
    counts = {k: {trips(PARAMS, XS[i], t[i]) for i in range(len(XS))}
              for k, t in PATTERNS.items()}
    assert counts["first"] == {1}
    assert counts["none"] == {3}
    assert 2 in counts["second"]
    assert counts["mixed"] == {1, 3}
    assert counts["all_three"] >= {1, 3}


def _per_example_loop(ts):
    return [tl.grad(loss)(PARAMS, XS[i], YS[i], ts[i]) for i in range(len(XS))]


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_per_example_gradients_equal_a_loop_of_grad(pattern):
    ts = PATTERNS[pattern]
    g = tl.vmap(tl.grad(loss), in_axes=(None, 0, 0, 0))(PARAMS, XS, YS, ts)
    ref = _per_example_loop(ts)
    for k in range(3):
        for j in range(2):
            np.testing.assert_allclose(g[k][j], [r[k][j] for r in ref], rtol=1e-10,
                                       atol=1e-14)


@pytest.mark.parametrize("pattern", ["mixed", "all_three", "none"])
def test_per_example_gradients_against_finite_differences(pattern):
    ts = PATTERNS[pattern]
    g = tl.vmap(tl.grad(loss, argnums=1), in_axes=(None, 0, 0, 0))(PARAMS, XS, YS, ts)
    eps = 1e-6
    for i in range(len(XS)):
        for j in range(3):
            d = np.zeros(3)
            d[j] = eps
            fd = (loss(PARAMS, XS[i] + d, YS[i], ts[i]) -
                  loss(PARAMS, XS[i] - d, YS[i], ts[i])) / (2 * eps)
            assert abs(g[i, j] - fd) < 1e-6 * max(1.0, abs(fd))
    # (and of a weight: W of the second layer, entry (0, 1))
    gw = tl.vmap(tl.grad(loss), in_axes=(None, 0, 0, 0))(PARAMS, XS, YS, ts)[1][0]
    for i in range(len(XS)):
        up = [(W.copy(), b) for W, b in PARAMS]
        down = [(W.copy(), b) for W, b in PARAMS]
        up[1][0][0, 1] += eps
        down[1][0][0, 1] -= eps
        fd = (loss(up, XS[i], YS[i], ts[i]) - loss(down, XS[i], YS[i], ts[i])) / (2 * eps)
        assert abs(gw[i, 0, 1] - fd) < 1e-6 * max(1.0, abs(fd))


def test_a_width_one_state_is_not_broadcast_against_a_wider_one():
    # (np.where of a (n, 1) state and a (n, 4) one broadcasts: silently wrong)
    params = [(PARAMS[0][0], PARAMS[0][1]), (rng.normal(size=(4, 1)), 0.25)]

    def f(params, x, t):
        h = forward(params, x, t)
        return np.sum(h * h)

    ts = PATTERNS["mixed"]
    got = tl.vmap(f, in_axes=(None, 0, 0))(params, XS, ts)
    np.testing.assert_allclose(got, [f(params, XS[i], ts[i]) for i in range(len(XS))],
                               rtol=1e-12)


def test_branches_of_different_shapes_run_per_element():
    def f(x):
        h = x[:2] if x[0] > 0 else x[:1]
        return np.sum(h * h)

    xs = np.array([[1.0, 2.0, 3.0], [-1.0, 2.0, 3.0], [0.5, -2.0, 1.0]])
    np.testing.assert_allclose(tl.vmap(f)(xs), [f(x) for x in xs], rtol=1e-12)


def test_out_axes_and_in_axes_of_the_per_element_fallback():
    def f(params, x, t):
        h = forward(params, x, t)
        return h[:1] * 2.0, np.sum(h)

    ts = PATTERNS["mixed"]
    a, s = tl.vmap(f, in_axes=(None, 1, 0), out_axes=(1, 0))(PARAMS, XS.T, ts)
    ref = [f(PARAMS, XS[i], ts[i]) for i in range(len(XS))]
    np.testing.assert_allclose(a, np.stack([r[0] for r in ref], axis=1), rtol=1e-12)
    np.testing.assert_allclose(s, [r[1] for r in ref], rtol=1e-12)


@pytest.mark.parametrize("pattern", ["first", "none", "mixed", "all_three"])
def test_grad_of_a_function_calling_vmap(pattern):
    # ("mixed", "all_three": the batched code meets shapes that differ across the batch;
    # the gradient is then that of the function calling f on each element,
    # `GradFunction.each_element`)
    ts = PATTERNS[pattern]

    def total(params, xs, ys, ts):
        return np.sum(tl.vmap(loss, in_axes=(None, 0, 0, 0))(params, xs, ys, ts))

    g = tl.grad(total)(PARAMS, XS, YS, ts)
    ref = _per_example_loop(ts)
    for k in range(3):
        for j in range(2):
            want = sum(r[k][j] for r in ref)
            np.testing.assert_allclose(g[k][j], want, rtol=1e-10, atol=1e-14)


def test_grad_of_a_function_calling_vmap_against_finite_differences():
    def total(xs, params, ys, ts):
        return np.sum(tl.vmap(loss, in_axes=(None, 0, 0, 0))(params, xs, ys, ts) ** 2)

    ts = PATTERNS["mixed"]
    g = tl.grad(total)(XS, PARAMS, YS, ts)
    eps = 1e-6
    for i, j in [(0, 0), (1, 2), (4, 1), (5, 0)]:
        d = np.zeros_like(XS)
        d[i, j] = eps
        fd = (total(XS + d, PARAMS, YS, ts) - total(XS - d, PARAMS, YS, ts)) / (2 * eps)
        assert abs(g[i, j] - fd) < 1e-6 * max(1.0, abs(fd))


def _total(params, xs, ys, ts):
    return np.sum(tl.vmap(loss, in_axes=(None, 0, 0, 0))(params, xs, ys, ts) ** 2)


def _total_loop(params, xs, ys, ts):
    return sum(loss(params, xs[i], ys[i], ts[i]) ** 2 for i in range(len(xs)))


@pytest.mark.parametrize("pattern", ["mixed", "all_three", "none"])
def test_jit_of_a_function_calling_vmap_equals_a_loop_over_the_batch(pattern):
    # ("mixed", "all_three": the batched code meets shapes that differ across the batch;
    # the compiled function then runs a copy of the program where the `tl.vmap` calls
    # each element, `Transformed.each_element`: it raised `RaggedBatch`)
    ts = PATTERNS[pattern]

    def rows(params, xs, ys, ts):
        return tl.vmap(forward, in_axes=(None, 0, 0))(params, xs, ts)[:, :1] - ys

    compiled = tl.jit(_total)
    for _ in range(2):  # (the second call: the per-element code, built once)
        assert compiled(PARAMS, XS, YS, ts) == pytest.approx(
            _total_loop(PARAMS, XS, YS, ts), rel=1e-12)
    if pattern != "none":  # (`forward`'s rows differ in length: no stacked result)
        return
    want = np.stack([forward(PARAMS, XS[i], ts[i])[:1] - YS[i] for i in range(len(XS))])
    np.testing.assert_allclose(tl.jit(rows)(PARAMS, XS, YS, ts), want, rtol=1e-12)


def test_jit_of_vmap_per_element_inside_a_function_calling_it_twice():
    # (two `tl.vmap` calls, one ragged, one not, in a nested function; a closure over
    # the code around them)
    def f(params, xs, ys, ts):
        scale = np.sum(xs) * 0.0 + 2.0

        def inner(t):
            return tl.vmap(lambda x, y, s: loss(params, x, y, s) * scale)(xs, ys, t)
        return np.sum(inner(ts)) + np.sum(inner(PATTERNS["none"]))

    def ref(params, xs, ys, ts):
        return sum(2.0 * (loss(params, xs[i], ys[i], ts[i]) +
                          loss(params, xs[i], ys[i], INF)) for i in range(len(xs)))

    assert tl.jit(f)(PARAMS, XS, YS, PATTERNS["mixed"]) == pytest.approx(
        ref(PARAMS, XS, YS, PATTERNS["mixed"]), rel=1e-12)


def test_value_and_grad_vjp_jvp_and_jit_grad_of_a_function_calling_vmap_per_element():
    ts = PATTERNS["mixed"]
    value, g = tl.value_and_grad(_total, argnums=1)(PARAMS, XS, YS, ts)
    want_g = tl.grad(lambda xs: _total_loop(PARAMS, xs, YS, ts))(XS)
    assert value == pytest.approx(_total_loop(PARAMS, XS, YS, ts), rel=1e-12)
    np.testing.assert_allclose(g, want_g, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(tl.jit(tl.grad(_total, 1))(PARAMS, XS, YS, ts), want_g,
                               rtol=1e-10, atol=1e-14)
    out, vjp_fn = tl.vjp(_total, PARAMS, XS, YS, ts)
    assert out == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(vjp_fn(1.5)[1], 1.5 * want_g, rtol=1e-10, atol=1e-14)
    v = np.cos(XS)
    out, tangent = tl.jvp(lambda xs: _total(PARAMS, xs, YS, ts), (XS,), (v,))
    assert out == pytest.approx(value, rel=1e-12)
    assert tangent == pytest.approx(np.sum(want_g * v), rel=1e-10)


@pytest.mark.parametrize("transform", ["jit", "vjp", "grad"])
def test_compiled_code_calling_vmap_of_a_function_that_prints_is_refused_where_shapes_differ(
        transform, capsys):
    # (the batched code printed before it met the shapes: it is not run again per
    # element, which would print twice; the error says where the shapes differ)
    def noisy(params, x, y, t):
        print("loss")
        return loss(params, x, y, t)

    def total(params, xs, ys, ts):
        return np.sum(tl.vmap(noisy, in_axes=(None, 0, 0, 0))(params, xs, ys, ts))

    with pytest.raises(RaggedBatch, match="shape differs across the batch") as e:
        if transform == "vjp":
            tl.vjp(total, PARAMS, XS, YS, PATTERNS["mixed"])
        else:
            getattr(tl, transform)(total)(PARAMS, XS, YS, PATTERNS["mixed"])
    if transform == "jit":
        assert "test_vmap_ragged.py" in "".join(getattr(e.value, "__notes__", []))
    # (the batched code printed once per element, as a loop over the batch does)
    assert capsys.readouterr().out.count("loss") == len(XS)


def _draws(x, t):
    noise = np.random.normal()
    h = x
    if np.sum(h) > t:
        h = h[:1]
    return np.sum(h) + 0.0 * noise


def test_jit_calling_vmap_of_a_function_that_draws_is_refused_where_shapes_differ():
    with pytest.raises(RaggedBatch, match="shape differs across the batch") as e:
        tl.jit(lambda xs, ts: np.sum(tl.vmap(_draws)(xs, ts)))(XS, PATTERNS["mixed"])
    assert "test_vmap_ragged.py" in "".join(getattr(e.value, "__notes__", []))


def test_the_fallback_is_refused_where_the_function_draws():
    with pytest.raises(VmapError, match="random numbers or prints"):
        tl.vmap(_draws)(XS, PATTERNS["mixed"])


# --- A `tl.vmap` object, not a `tl.vmap` call: under `jit`, `vjp`, `jvp`, the Jacobians,
# and called inside compiled code as a global. Its batched code meets shapes that differ
# across the batch ("mixed", "all_three"); each transform then calls the function on
# each element (they raised `RaggedBatch`).

BATCHED_LOSS = tl.vmap(loss, in_axes=(None, 0, 0, 0))


def _losses_loop(xs, ts):
    return np.array([loss(PARAMS, xs[i], YS[i], ts[i]) for i in range(len(xs))])


def _global_total(xs, ts):
    return np.sum(BATCHED_LOSS(PARAMS, xs, YS, ts) ** 2)


@pytest.mark.parametrize("backend", ["python", "native"])
@pytest.mark.parametrize("pattern", ["mixed", "all_three", "none"])
def test_jit_and_vjp_of_a_vmap_object_equal_a_loop(pattern, backend):
    ts = PATTERNS[pattern]
    want = _losses_loop(XS, ts)
    f = tl.vmap(loss, in_axes=(None, 0, 0, 0))
    compiled = tl.jit(f, backend=backend)
    for _ in range(2):
        np.testing.assert_allclose(compiled(PARAMS, XS, YS, ts), want, rtol=1e-12)
    out, vjp_fn = tl.vjp(f, PARAMS, XS, YS, ts, backend=backend)
    np.testing.assert_allclose(out, want, rtol=1e-12)
    ct = np.linspace(0.5, 2.0, len(XS))
    d_xs = vjp_fn(ct)[1]
    want_d = np.stack([ct[i] * tl.grad(loss, argnums=1)(PARAMS, XS[i], YS[i], ts[i])
                       for i in range(len(XS))])
    np.testing.assert_allclose(d_xs, want_d, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("pattern", ["mixed", "none"])
def test_jvp_and_jacobians_of_a_vmap_object_equal_a_loop(pattern):
    ts = PATTERNS[pattern]
    f = tl.vmap(lambda xs, ts: loss(PARAMS, xs, YS[0], ts))
    v = np.cos(XS)
    rows = [tl.grad(loss, argnums=1)(PARAMS, XS[i], YS[0], ts[i]) for i in range(len(XS))]
    out, tangent = tl.jvp(f, (XS, ts), (v, np.zeros_like(ts)))
    np.testing.assert_allclose(out, [loss(PARAMS, XS[i], YS[0], ts[i])
                                     for i in range(len(XS))], rtol=1e-12)
    np.testing.assert_allclose(tangent, [r @ v[i] for i, r in enumerate(rows)],
                               rtol=1e-10, atol=1e-14)
    want = np.zeros((len(XS), *XS.shape))
    for i, r in enumerate(rows):
        want[i, i] = r
    for jac in (tl.jacrev, tl.jacfwd):
        np.testing.assert_allclose(jac(f)(XS, ts), want, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("backend", ["python", "native"])
@pytest.mark.parametrize("pattern", ["mixed", "all_three", "none"])
def test_a_global_vmap_object_called_in_compiled_code(pattern, backend):
    # (batched for the call's kinds, as `tl.vmap(loss, ...)` written there is)
    ts = PATTERNS[pattern]
    want = np.sum(_losses_loop(XS, ts) ** 2)
    assert tl.jit(_global_total, backend=backend)(XS, ts) == pytest.approx(want, rel=1e-12)
    g = tl.grad(_global_total, backend=backend)(XS, ts)
    want_g = tl.grad(lambda xs: _total_loop(PARAMS, xs, YS, ts))(XS)
    np.testing.assert_allclose(g, want_g, rtol=1e-10, atol=1e-14)


def _scaled(x, s=2.0):
    return np.sin(x) * s


SCALED = tl.vmap(_scaled)
SCALED_WHOLE = tl.vmap(_scaled, in_axes=(0, None))


def _call_scaled(xs, s):
    return SCALED(xs, s)


def _call_scaled_whole(xs, s):
    return SCALED_WHOLE(xs, s)


def test_a_global_vmap_object_in_compiled_code_reads_its_axes_as_outside():
    # (called in compiled code, a vmap object maps what the call passes as it does
    # outside, JAX's rules: `s` passed positionally under an int `in_axes` is mapped,
    # and passed whole where `in_axes` gives it None)
    xs, s = np.linspace(0.0, 1.0, 4), np.array([1.0, 2.0, 3.0, 4.0])
    want = SCALED(xs, s)
    np.testing.assert_allclose(want, np.sin(xs) * s, rtol=1e-15)
    np.testing.assert_allclose(tl.jit(_call_scaled)(xs, s), want, rtol=1e-15)
    whole = SCALED_WHOLE(xs, s)
    assert whole.shape == (4, 4)
    np.testing.assert_allclose(whole, np.sin(xs)[:, None] * s, rtol=1e-15)
    np.testing.assert_allclose(tl.jit(_call_scaled_whole)(xs, s), whole, rtol=1e-15)
