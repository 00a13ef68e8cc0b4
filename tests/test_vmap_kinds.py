"""`tl.vmap` called inside compiled code is batched for the shapes its arguments have
when the compiled version's argument kinds say them (as a `tl.vmap` called with
arguments is), and the kinds that lets the optimizer follow through the batched code:
loop state updated by its own gradient, transposes with axes, broadcasts, items of
arguments. Results against loops over the batch and finite differences; code shapes
against what a NumPy user writes."""

from __future__ import annotations

import numpy as np
import pytest
import vmap_programs as vp

import tapeless as tl

RNG = np.random.default_rng(7)


def _params():
    return (RNG.normal(size=(1, 4)), RNG.normal(size=4), RNG.normal(size=(4, 1)))


def _tasks(n=3, shots=5):
    return (RNG.normal(size=(n, shots, 1)), RNG.normal(size=(n, shots, 1)))


def _loop_meta_loss(p, tasks):
    n = tasks[0].shape[0]
    return sum(tl.jit(vp.inner_steps_loss)(p, (tasks[0][i], tasks[1][i]))
               for i in range(n)) / n


def test_meta_gradient_of_a_vmap_inside_compiled_code_equals_the_loop(optimize: str) -> None:
    p, tasks = _params(), _tasks()
    got = tl.grad(vp.inner_steps_meta_loss)(p, tasks)
    per_task = tl.grad(vp.inner_steps_loss)
    loop = [per_task(p, (tasks[0][i], tasks[1][i])) for i in range(3)]
    for j in range(3):
        np.testing.assert_allclose(got[j], sum(g[j] for g in loop) / 3, rtol=1e-10,
                                   atol=1e-14)


def test_meta_gradient_against_finite_differences() -> None:
    p, tasks = _params(), _tasks()
    got = tl.grad(vp.inner_steps_meta_loss)(p, tasks)
    eps = 1e-6
    for j, shape in enumerate(x.shape for x in p):
        for index in [(0,) * len(shape), tuple(n - 1 for n in shape)]:
            up = [x.copy() for x in p]
            down = [x.copy() for x in p]
            up[j][index] += eps
            down[j][index] -= eps
            fd = (_loop_meta_loss(tuple(up), tasks) - _loop_meta_loss(tuple(down), tasks)) \
                / (2 * eps)
            assert got[j][index] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_a_vmap_inside_compiled_code_is_written_for_its_arguments_shapes() -> None:
    # (without the shapes the batching rules decide at run time: `matmul_batched`,
    # `lift`, type tests on every tuple item, and the meta-gradient differentiates those
    # decisions as well)
    p, tasks = _params(), _tasks()
    grad = tl.grad(vp.inner_steps_meta_loss)
    source = grad.source_for(p, tasks)
    for generic in ("matmul_batched", "_lift", "isinstance", "tree_leaves", "unpack",
                    "np.ndim", "_ndim", "to_structure", "comprehension"):
        assert generic not in source, (generic, source)
    # (the batch's size is known: the parameters are broadcast to it once, to shapes
    # the optimizer folds, `(3, 1, 4)`)
    assert "np.broadcast_to(" in source and ("(3,)" in source or "(3, " in source), source


def test_a_vmap_inside_jit_is_built_again_for_other_shapes() -> None:
    def batched(w, xs, ys):
        return tl.vmap(vp.loss, in_axes=(None, 0, 0))(w, xs, ys)

    f = tl.jit(batched)
    for n, m in ((6, 3), (2, 5)):
        w, xs, ys = RNG.normal(size=(4, m)), RNG.normal(size=(n, m)), RNG.normal(size=(n, 4))
        np.testing.assert_allclose(f(w, xs, ys), [vp.loss(w, x, y) for x, y in
                                                  zip(xs, ys, strict=True)], rtol=1e-12)
    assert f.compile_count == 2


def test_a_vmap_over_an_axis_other_than_the_first_inside_compiled_code() -> None:
    def batched(w, xs, ys):
        return np.sum(tl.vmap(vp.loss, in_axes=(None, 1, 0))(w, xs, ys))

    w, xs, ys = RNG.normal(size=(4, 3)), RNG.normal(size=(3, 6)), RNG.normal(size=(6, 4))
    expected = sum(tl.grad(vp.loss)(w, x, y) for x, y in zip(xs.T, ys, strict=True))
    np.testing.assert_allclose(tl.grad(batched)(w, xs, ys), expected, rtol=1e-12)


def test_arguments_of_unknown_kind_keep_the_run_time_rules() -> None:
    # (a list of arrays of different shapes has no kind: the vmap is batched as before,
    # and gives the loop's result)
    def batched(w, parts):
        return tl.vmap(lambda w, a: np.sum(w * a[0]) + np.sum(a[1]), in_axes=(None, 0))(
            w, parts)

    w = RNG.normal(size=3)
    parts = [RNG.normal(size=(4, 3)), RNG.normal(size=(4, 2))]
    np.testing.assert_allclose(tl.jit(batched)(w, parts),
                               [np.sum(w * parts[0][i]) + np.sum(parts[1][i])
                                for i in range(4)], rtol=1e-12)


def test_loop_state_updated_by_its_gradient_keeps_its_kind(optimize: str) -> None:
    # (`to_structure` of float64 arrays has the kind of the value it is like: so the
    # parameters after an inner step have their kinds again, and the plumbing of the
    # gradient inside the loop folds away)
    p = _params()
    task = (RNG.normal(size=(5, 1)), RNG.normal(size=(5, 1)))
    f = tl.jit(vp.inner_steps_loss)
    assert f(p, task) == pytest.approx(vp.inner_steps_loss(p, task), rel=1e-12)
    if optimize == "on":
        source = f.source_for(p, task)
        for generic in ("to_structure", "unpack", "_lift", "unbroadcast", "np.ndim"):
            assert generic not in source, (generic, source)


def _steps_on_a_broadcast_bias(p, x):
    for _ in range(3):
        g = tl.grad(lambda q: np.sum(np.tanh(x @ q[0] + q[1]) ** 2))(p)
        p = (p[0] - 0.1 * g[0], p[1] - 0.1 * g[1])
    return p


def test_gradient_of_a_broadcast_argument_has_its_shape_in_the_loop() -> None:
    # (the bias (1,) is broadcast against (5, 3): its gradient is summed back to (1,),
    # so the loop state's kind holds)
    p = (RNG.normal(size=(2, 3)), RNG.normal(size=(1,)))
    x = RNG.normal(size=(5, 2))
    got = tl.jit(_steps_on_a_broadcast_bias)(p, x)
    want = vp_python_steps(p, x)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-12)


def vp_python_steps(p, x):
    """`_steps_on_a_broadcast_bias` by hand (the gradient written out)."""
    W, b = p
    for _ in range(3):
        h = np.tanh(x @ W + b)
        d = 2 * h * (1 - h * h)
        W, b = W - 0.1 * (x.T @ d), b - 0.1 * np.sum(d, axis=(0, 1), keepdims=False)[None]
    return W, b


def test_transpose_with_axes_has_a_kind() -> None:
    def f(h):
        return (np.ndim(np.transpose(h, axes=(0, 2, 1)) @ h),
                np.transpose(h, axes=(2, 0, 1)) * 1.0, np.transpose(h, axes=[1, -1, 0]) + 0.0)

    h = RNG.normal(size=(2, 4, 3))
    got = tl.jit(f)(h)
    assert got[0] == 3
    np.testing.assert_array_equal(got[1], np.transpose(h, (2, 0, 1)))
    np.testing.assert_array_equal(got[2], np.transpose(h, (1, 2, 0)))
    source = tl.jit(f).source_for(h)
    assert "np.ndim" not in source, source


def test_broadcast_to_a_known_shape_has_a_kind() -> None:
    def f(p):
        q = np.broadcast_to(p, (4,) + np.shape(p))
        return np.ndim(q), q * 2.0

    p = RNG.normal(size=(2, 3))
    nd, q = tl.jit(f)(p)
    assert nd == 3
    np.testing.assert_array_equal(q, np.broadcast_to(p * 2.0, (4, 2, 3)))
    assert "np.ndim" not in tl.jit(f).source_for(p)


def test_isinstance_of_an_item_of_an_argument_is_known() -> None:
    def f(t):
        return isinstance(t[0], np.ndarray), isinstance(t[1][0], np.ndarray), \
            isinstance(t[1][1], float)

    t = (np.ones(3), (np.ones(2), 2.0))
    assert tl.jit(f)(t) == (True, True, True)
    source = tl.jit(f).source_for(t)
    assert "isinstance(t[0]" not in source and "isinstance(t[1][0]" not in source, source


def _tuple_state(p, x):
    for _ in range(4):
        p = (p[0] * 0.5 + x, p[1] - np.sum(x))
    return p


def test_vmap_of_a_loop_over_a_tuple_state_keeps_its_items() -> None:
    # (the state starts unbatched and becomes a display of batched items: batched item
    # by item, so the items keep their kinds, not as one tuple of unknown structure)
    p = (RNG.normal(size=3), RNG.normal(size=(2,)))
    xs = RNG.normal(size=(5, 3))
    v = tl.vmap(_tuple_state, in_axes=(None, 0))
    got = v(p, xs)
    for j in range(2):
        np.testing.assert_allclose(got[j], np.stack([_tuple_state(p, x)[j] for x in xs]),
                                   rtol=1e-12)
    source = v.source_for(p, xs)
    assert "tree_leaves" not in source and "tree_unflatten" not in source, source


def _tuple_state_zero_trips(p, x, n):
    for _ in range(n):
        p = (p[0] * 0.5 + x, p[1] - np.sum(x))
    return p


def test_vmap_of_a_loop_over_a_tuple_state_that_runs_no_trip() -> None:
    p = (RNG.normal(size=3), RNG.normal(size=(2,)))
    xs = RNG.normal(size=(5, 3))
    for n in (0, 2):
        got = tl.vmap(_tuple_state_zero_trips, in_axes=(None, 0, None))(p, xs, n)
        for j in range(2):
            np.testing.assert_allclose(
                got[j], np.stack([_tuple_state_zero_trips(p, x, n)[j] for x in xs]),
                rtol=1e-12)


def _flag_kept(o, a, m):
    return np.logical_xor(o, np.logical_and(a, np.logical_xor(np.logical_or(m, o), o)))


def _flag_kept_swapped(o, a, m):
    return np.logical_xor(np.logical_and(np.logical_xor(o, np.logical_or(o, m)), a), o)


@pytest.mark.parametrize("fn", [_flag_kept, _flag_kept_swapped])
def test_a_flag_kept_where_active_is_set_with_two_logical_operations(fn) -> None:
    # (`old ^ (active & ((m | old) ^ old))`, what a masked loop keeps of a flag a `break`
    # sets, is `old | (active & m)`: every combination of truth values, and numbers as
    # truth values)
    bits = np.array([[o, a, m] for o in (0, 1) for a in (0, 1) for m in (0, 1)])
    o, a, m = (bits[:, j].astype(bool) for j in range(3))
    f = tl.jit(fn)
    np.testing.assert_array_equal(f(o, a, m), fn(o, a, m))
    np.testing.assert_array_equal(f(o * 2.0, a * 0.5, m * 3.0), fn(o * 2.0, a * 0.5, m * 3.0))
    source = f.source_for(o, a, m)
    assert "logical_xor" not in source and source.count("logical_") == 2, source


def test_a_masked_loop_with_a_break_keeps_its_flag_with_two_operations() -> None:
    a = np.concatenate([[1.0, 8.0, 0.0], np.abs(RNG.normal(size=20)) * 50 + 0.01])
    a[2] = 1.0  # (an element whose first step is already within the tolerance)
    v = tl.vmap(vp.cube_root_with_break)
    x, steps = v(a)
    want = [tl.jit(vp.cube_root_with_break)(float(y)) for y in a]
    np.testing.assert_allclose(x, [w[0] for w in want], rtol=1e-15)
    np.testing.assert_array_equal(steps, [w[1] for w in want])
    loop = v.source_for(a).partition("while ")[2]
    assert "logical_xor" not in loop, loop


def _scaled_layer(s, w, xs):
    return np.sum(tl.vmap(lambda s, w, x: np.sum(np.tanh(s * (w @ x)) ** 2),
                          in_axes=(None, None, 0))(s, w, xs))


def test_grad_of_grad_of_a_function_that_calls_vmap() -> None:
    # (the inner gradient's graph is built for the arguments' kinds as well: the
    # batched matmul is written for the shapes, not decided at run time, and nothing of
    # the run-time rules' type tests is left to differentiate twice)
    w, xs = RNG.normal(size=(3, 4)), RNG.normal(size=(6, 4))
    s = 0.7
    second = tl.grad(tl.grad(_scaled_layer))
    first = tl.grad(_scaled_layer)
    eps = 1e-5
    fd = (first(s + eps, w, xs) - first(s - eps, w, xs)) / (2 * eps)
    assert second(s, w, xs) == pytest.approx(fd, rel=1e-7)
    source = second.source_for(s, w, xs)
    assert "isinstance" not in source and "J_" not in source, source


# --- a `tl.vmap` of a closure over values of the compiled code around it ------------------
# (batched for the kinds of those values as well, as if they were unmapped arguments: the
# code is the code of the same function taking them as arguments; it was batched when the
# program was parsed, its rules deciding at run time)

RUN_TIME_RULES = ("np.ndim", "_ndim", "matmul_batched", "isinstance", "_lift", "tree_leaves")


def _body(source: str) -> str:
    """The generated code without its first line (the function's name)."""
    return source.split("\n", 1)[1]


def _closure_layer(w, xs):
    s = np.tanh(w)

    def one(x):
        return np.sum(np.tanh(s @ x) ** 2) * w[0, 0]

    return np.sum(tl.vmap(one)(xs) * np.arange(1.0, xs.shape[0] + 1))


def _one(s, w, x):
    return np.sum(np.tanh(s @ x) ** 2) * w[0, 0]


def _argument_layer(w, xs):
    s = np.tanh(w)
    return np.sum(tl.vmap(_one, in_axes=(None, None, 0))(s, w, xs) *
                  np.arange(1.0, xs.shape[0] + 1))


def _closure_layer_loop(w, xs):
    s = np.tanh(w)
    return sum((i + 1.0) * np.sum(np.tanh(s @ x) ** 2) * w[0, 0] for i, x in enumerate(xs))


@pytest.mark.parametrize("transform", [tl.jit, tl.grad])
def test_a_vmap_of_a_closure_is_batched_as_one_taking_its_values_as_arguments(
        transform) -> None:
    w, xs = RNG.normal(size=(3, 3)), RNG.normal(size=(5, 3))
    source = transform(_closure_layer).source_for(w, xs)
    assert _body(source) == _body(transform(_argument_layer).source_for(w, xs)), source
    for generic in RUN_TIME_RULES:
        assert generic not in source, (generic, source)


def test_a_vmap_of_a_closure_inside_compiled_code_equals_the_loop(optimize: str) -> None:
    w, xs = RNG.normal(size=(3, 3)), RNG.normal(size=(5, 3))
    assert tl.jit(_closure_layer)(w, xs) == pytest.approx(_closure_layer_loop(w, xs),
                                                          rel=1e-12)


def test_grad_of_a_vmap_of_a_closure_equals_the_loop_of_grad(optimize: str) -> None:
    w, xs = RNG.normal(size=(3, 3)), RNG.normal(size=(5, 3))
    grad = tl.grad(_closure_layer)
    expected = tl.grad(_closure_layer_loop)(w, xs)
    np.testing.assert_allclose(grad(w, xs), expected, rtol=1e-10, atol=1e-14)
    eps = 1e-6
    up, down = w.copy(), w.copy()
    up[0, 0] += eps
    down[0, 0] -= eps
    fd = (_closure_layer_loop(up, xs) - _closure_layer_loop(down, xs)) / (2 * eps)
    assert grad(w, xs)[0, 0] == pytest.approx(fd, rel=1e-6)


def _mapped_sines(c, k, xs):
    return np.sum(tl.vmap(lambda x: np.sin(c @ x) * k)(xs))


def _closure_in_a_loop(w, xs):
    # (the values the closure reads are made by each trip of the loop around the call)
    total = 0.0
    for k in range(3):
        total = total + _mapped_sines(w * (k + 1.0), k, xs)
    return total


def test_a_vmap_of_a_closure_over_loop_values(optimize: str) -> None:
    w, xs = RNG.normal(size=4), RNG.normal(size=(6, 4))
    expected = sum(np.sin((w * (k + 1.0)) @ x) * k for k in range(3) for x in xs)
    assert tl.jit(_closure_in_a_loop)(w, xs) == pytest.approx(expected, rel=1e-12)
    loop_grad = sum(np.cos((w * (k + 1.0)) @ x) * k * (k + 1.0) * x
                    for k in range(3) for x in xs)
    np.testing.assert_allclose(tl.grad(_closure_in_a_loop)(w, xs), loop_grad, rtol=1e-10)
    if optimize == "on":
        source = tl.grad(_closure_in_a_loop).source_for(w, xs)
        for generic in RUN_TIME_RULES:
            assert generic not in source, (generic, source)


def _closure_of_a_gradient(p, tasks, lr):
    # (the MAML shape: the parameters and the step size come from the code around)
    def task(t):
        x, y = t
        q = p
        for _ in range(2):
            g = tl.grad(lambda q: np.mean((np.tanh(x @ q) - y) ** 2))(q)
            q = q - lr * g
        return np.mean((np.tanh(x @ q) - y) ** 2)

    return np.mean(tl.vmap(task)(tasks))


def _task(p, t, lr):
    x, y = t
    q = p
    for _ in range(2):
        g = tl.grad(lambda q: np.mean((np.tanh(x @ q) - y) ** 2))(q)
        q = q - lr * g
    return np.mean((np.tanh(x @ q) - y) ** 2)


def _argument_of_a_gradient(p, tasks, lr):
    return np.mean(tl.vmap(_task, in_axes=(None, 0, None))(p, tasks, lr))


def _closure_of_a_gradient_loop(p, tasks, lr):
    xs, ys = tasks
    return sum(_task(p, (x, y), lr) for x, y in zip(xs, ys, strict=True)) / xs.shape[0]


def test_meta_gradient_through_a_vmap_of_a_closure_equals_the_loop(optimize: str) -> None:
    p = RNG.normal(size=(2, 3))
    tasks = (RNG.normal(size=(4, 5, 2)), RNG.normal(size=(4, 5, 3)))
    grad = tl.grad(_closure_of_a_gradient)
    expected = tl.grad(_closure_of_a_gradient_loop)(p, tasks, 0.1)
    np.testing.assert_allclose(grad(p, tasks, 0.1), expected, rtol=1e-10, atol=1e-14)
    assert tl.jit(_closure_of_a_gradient)(p, tasks, 0.1) == pytest.approx(
        _closure_of_a_gradient_loop(p, tasks, 0.1), rel=1e-12)
    if optimize == "on":
        source = grad.source_for(p, tasks, 0.1)
        assert _body(source) == _body(tl.grad(_argument_of_a_gradient).source_for(
            p, tasks, 0.1)), source
        for generic in (*RUN_TIME_RULES, "unbroadcast", "to_structure"):
            assert generic not in source, (generic, source)


def _nested_closures(xs, ys):
    # (the inner function reads the outer one's element: a mapped value there)
    return np.sum(tl.vmap(lambda x: np.sum(tl.vmap(lambda y: np.tanh(x * y))(ys)))(xs))


def test_nested_vmaps_of_closures(optimize: str) -> None:
    xs, ys = RNG.normal(size=(4, 3)), RNG.normal(size=(5, 3))
    expected = sum(np.sum(np.tanh(x * y)) for x in xs for y in ys)
    assert tl.jit(_nested_closures)(xs, ys) == pytest.approx(expected, rel=1e-12)
    loop_grad = np.array([sum((1 - np.tanh(x * y) ** 2) * y for y in ys) for x in xs])
    np.testing.assert_allclose(tl.grad(_nested_closures)(xs, ys), loop_grad, rtol=1e-10)
    if optimize == "on":
        source = tl.grad(_nested_closures).source_for(xs, ys)
        for generic in RUN_TIME_RULES:
            assert generic not in source, (generic, source)


def test_a_vmap_of_a_closure_over_a_value_of_unknown_kind_keeps_the_run_time_rules(
        optimize: str) -> None:
    # (a list of arrays of different shapes has no kind: the closure is batched as it
    # was parsed, and gives the loop's results, derivatives included)
    def batched(w, parts):
        return np.sum(tl.vmap(lambda x: np.sum(w * x) * np.sum(parts[1]))(parts[0]))

    w = RNG.normal(size=3)
    parts = [RNG.normal(size=(4, 3)), RNG.normal(size=(2, 5))]
    assert tl.jit(batched)(w, parts) == pytest.approx(
        sum(np.sum(w * x) * np.sum(parts[1]) for x in parts[0]), rel=1e-12)
    np.testing.assert_allclose(tl.grad(batched)(w, parts),
                               np.sum(parts[0], axis=0) * np.sum(parts[1]), rtol=1e-12)


def test_a_vmap_batched_for_the_kinds_is_not_batched_without_them_first(monkeypatch) -> None:
    # (a compiled version for known argument kinds batches the function's own `tl.vmap`
    # calls from its parsed graph: the batching without kinds, which it would throw away,
    # is not done; it still is where the kinds are not known)
    from tapeless.ad import batch

    prepared = []
    original = batch.PREPARE

    def counted(fg):
        prepared.append(fg.name)
        return original(fg)

    monkeypatch.setattr(batch, "PREPARE", counted)

    def fresh(w, xs):  # (a function of its own: parsed, and batched, here)
        return np.sum(tl.vmap(lambda w, x: np.tanh(w @ x), in_axes=(None, 0))(w, xs))

    w, xs = RNG.normal(size=(3, 4)), RNG.normal(size=(5, 4))
    got = tl.grad(fresh)(w, xs)
    expected = sum(np.outer(1 - np.tanh(w @ x) ** 2, x) for x in xs)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert tl.jit(fresh)(w, xs) == pytest.approx(sum(np.sum(np.tanh(w @ x)) for x in xs),
                                                 rel=1e-12)
    assert prepared == [], prepared

    def unknown(w, parts):
        return np.sum(tl.vmap(lambda w, a: np.sum(w * a[0]), in_axes=(None, 0))(w, parts))

    parts = [RNG.normal(size=(4, 3)), RNG.normal(size=(4, 2))]
    assert tl.jit(unknown)(w[0, :3], parts) == pytest.approx(
        sum(np.sum(w[0, :3] * parts[0][i]) for i in range(4)), rel=1e-12)
    assert len(prepared) == 1, prepared
