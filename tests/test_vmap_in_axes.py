"""`tl.vmap`'s `in_axes` for each call, as JAX reads them: an int (or None) applies to
every positional argument the call passes, a tuple has one entry per positional argument
passed, an argument passed by keyword is mapped over its axis 0, and a parameter not
passed takes its default, the same for every element. Checked against `jax.vmap` (where
jax is installed) and against a loop over the batch, from Python and for `tl.vmap`
written inside compiled code (`tl.jit`, `tl.grad`), and for `tl.vmap(tl.grad(f))`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tapeless as tl
from tapeless.ad.batch import VmapError

RNG = np.random.default_rng(14)
N = 5
W = np.arange(6.0).reshape(3, 2) + 1.0
XS = RNG.normal(size=N)
WS = RNG.normal(size=(N, 3, 2))
AS = RNG.normal(size=N)
BS = RNG.normal(size=N)
YS = RNG.normal(size=N)


def offset(x, w=W):
    return np.sum(w * w) * x + w[0, 0] * np.sin(x)


def affine(x, a=2.0, b=3.0):
    return x * a + b


def star(x, *rest):
    t = x * 2.0
    for r in rest:
        t = t + r * np.cos(x)
    return t


def keyword_only(x, *, k=1.5):
    return x * k * x


def _jax_versions() -> dict[str, Callable[..., Any]]:
    jnp = pytest.importorskip("jax.numpy")
    import jax

    jax.config.update("jax_enable_x64", True)

    def j_offset(x, w=W):
        return jnp.sum(w * w) * x + w[0, 0] * jnp.sin(x)

    def j_star(x, *rest):
        t = x * 2.0
        for r in rest:
            t = t + r * jnp.cos(x)
        return t

    def j_keyword_only(x, *, k=1.5):
        return x * k * x

    return {"offset": j_offset, "affine": affine, "star": j_star,
            "keyword_only": j_keyword_only}


FUNCTIONS = {"offset": offset, "affine": affine, "star": star, "keyword_only": keyword_only}

# (function, in_axes, axis_size, positional arguments, keyword arguments, element i of
# the batch as the loop calls it)
CASES: list[tuple[str, Any, Any, tuple, dict, Callable[[int], tuple[tuple, dict]]]] = [
    ("offset", 0, None, (XS,), {}, lambda i: ((XS[i],), {})),
    ("offset", 0, None, (XS, WS), {}, lambda i: ((XS[i], WS[i]), {})),
    ("offset", 0, None, (XS,), {"w": WS}, lambda i: ((XS[i],), {"w": WS[i]})),
    ("offset", (0, None), None, (XS, W * 2), {}, lambda i: ((XS[i], W * 2), {})),
    ("offset", (0,), None, (XS,), {"w": WS}, lambda i: ((XS[i],), {"w": WS[i]})),
    ("offset", (0, 2), None, (XS, np.moveaxis(WS, 0, 2)), {},
     lambda i: ((XS[i], WS[i]), {})),
    ("offset", (None,), None, (1.5,), {"w": WS}, lambda i: ((1.5,), {"w": WS[i]})),
    ("affine", 0, None, (XS,), {}, lambda i: ((XS[i],), {})),
    ("affine", 0, None, (XS, AS), {}, lambda i: ((XS[i], AS[i]), {})),
    ("affine", 0, None, (XS,), {"b": BS}, lambda i: ((XS[i],), {"b": BS[i]})),
    ("affine", (0, None, 0), None, (XS, 2.5, BS), {}, lambda i: ((XS[i], 2.5, BS[i]), {})),
    ("affine", None, N, (0.5,), {"b": BS}, lambda i: ((0.5,), {"b": BS[i]})),
    ("affine", None, N, (0.5, 1.5), {}, lambda i: ((0.5, 1.5), {})),
    ("star", 0, None, (XS,), {}, lambda i: ((XS[i],), {})),
    ("star", 0, None, (XS, AS, YS), {}, lambda i: ((XS[i], AS[i], YS[i]), {})),
    ("star", (0, None, 0), None, (XS, 1.5, YS), {}, lambda i: ((XS[i], 1.5, YS[i]), {})),
    ("keyword_only", 0, None, (XS,), {}, lambda i: ((XS[i],), {})),
    ("keyword_only", 0, None, (XS,), {"k": AS}, lambda i: ((XS[i],), {"k": AS[i]})),
]
IDS = [f"{c[0]}-{c[1]}-{len(c[3])}pos-{'+'.join(c[4]) or 'nokw'}" for c in CASES]


def _loop(name: str, element: Callable[[int], tuple[tuple, dict]]) -> np.ndarray:
    f = FUNCTIONS[name]
    return np.stack([np.asarray(f(*element(i)[0], **element(i)[1])) for i in range(N)])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_call_maps_the_arguments_it_passes_as_a_loop_does(case: Any) -> None:
    name, in_axes, size, args, kwargs, element = case
    got = tl.vmap(FUNCTIONS[name], in_axes, 0, size)(*args, **kwargs)
    np.testing.assert_allclose(got, _loop(name, element), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_call_maps_the_arguments_it_passes_as_jax_does(case: Any) -> None:
    import importlib

    jfs = _jax_versions()
    jax = importlib.import_module("jax")
    name, in_axes, size, args, kwargs, _ = case
    got = tl.vmap(FUNCTIONS[name], in_axes, 0, size)(*args, **kwargs)
    want = jax.vmap(jfs[name], in_axes=in_axes, axis_size=size)(*args, **kwargs)
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-12, atol=1e-12)


def test_one_vmap_object_called_in_several_ways_keeps_each_calls_axes() -> None:
    # (the axes depend on the call: each kind of call has its vmap object, made once)
    v = tl.vmap(offset)
    alone = _loop("offset", lambda i: ((XS[i],), {}))
    mapped = _loop("offset", lambda i: ((XS[i], WS[i]), {}))
    for _ in range(2):
        np.testing.assert_allclose(v(XS), alone, rtol=1e-12)
        np.testing.assert_allclose(v(XS, WS), mapped, rtol=1e-12)
        np.testing.assert_allclose(v(XS, w=WS), mapped, rtol=1e-12)
        np.testing.assert_allclose(v(x=XS), alone, rtol=1e-12)
    assert v.for_call((XS,), {}) is v
    assert v.for_call((XS, WS), {}) is v.for_call((XS, WS), {})
    assert v.for_call((XS, WS), {}) is not v


def test_a_defaulted_argument_passed_whole_needs_none() -> None:
    # (as in JAX: a positional argument is mapped under an int in_axes; None passes it
    # whole)
    with pytest.raises(VmapError, match="argument 1 has no axis 0 to map over"):
        tl.vmap(affine)(XS, 2.5)
    np.testing.assert_allclose(tl.vmap(affine, in_axes=(0, None))(XS, 2.5), XS * 2.5 + 3.0,
                               rtol=1e-12)


@pytest.mark.parametrize("in_axes, args", [((0, None), (XS,)), ((0,), (XS, WS)),
                                           ((0, None), (XS, 1.0, YS))],
                         ids=["too-many", "too-few", "star"])
def test_a_tuple_of_the_wrong_length_is_a_located_error(in_axes: Any, args: tuple) -> None:
    f = star if len(args) == 3 else offset
    with pytest.raises(VmapError) as err:
        tl.vmap(f, in_axes=in_axes)(*args)
    message = str(err.value)
    assert f"in_axes has {len(in_axes)} entries, but the call passes {len(args)}" in message
    assert "one entry per positional argument passed" in message
    assert f"{__file__}:" in message and "tl.vmap(f, in_axes=in_axes)(*args)" in message


def test_jax_refuses_a_tuple_of_the_wrong_length_too() -> None:
    jfs = _jax_versions()
    import jax

    with pytest.raises(ValueError, match="tuple of entries corresponding to the positional"):
        jax.vmap(jfs["offset"], in_axes=(0, None))(XS)


# --- tl.vmap written inside compiled code ------------------------------------------------


def inline_alone(xs, ws):
    return tl.vmap(offset)(xs) + 0.0 * np.sum(ws)


def inline_positional(xs, ws):
    return tl.vmap(offset)(xs, ws)


def inline_keyword(xs, ws):
    return tl.vmap(offset)(xs, w=ws)


def inline_named_none(xs, ws):
    return tl.vmap(offset, in_axes=(0, None))(xs, ws[0])


def inline_both_ways(xs, ws):
    v = tl.vmap(offset)
    return v(xs, ws) + v(xs) + v(xs, w=ws)


GLOBAL_V = tl.vmap(offset)


def global_both_ways(xs, ws):
    return GLOBAL_V(xs, ws) + GLOBAL_V(xs) + GLOBAL_V(x=xs, w=ws)


def _inline_expected(name: str, xs: np.ndarray, ws: np.ndarray) -> np.ndarray:
    alone = np.stack([offset(x) for x in xs])
    mapped = np.stack([offset(x, w) for x, w in zip(xs, ws, strict=True)])
    return {"inline_alone": alone, "inline_positional": mapped, "inline_keyword": mapped,
            "inline_named_none": np.stack([offset(x, ws[0]) for x in xs]),
            "inline_both_ways": 2 * mapped + alone,
            "global_both_ways": 2 * mapped + alone}[name]


INLINE = [inline_alone, inline_positional, inline_keyword, inline_named_none,
          inline_both_ways, global_both_ways]


@pytest.mark.parametrize("fn", INLINE, ids=[f.__name__ for f in INLINE])
def test_inside_compiled_code_a_call_maps_what_it_passes(fn: Any, optimize: str) -> None:
    want = _inline_expected(fn.__name__, XS, WS)
    np.testing.assert_allclose(fn(XS, WS), want, rtol=1e-12)  # (from Python: the objects)
    np.testing.assert_allclose(tl.jit(fn)(XS, WS), want, rtol=1e-12)


def _numeric_gradient(f: Callable[[np.ndarray, np.ndarray], float], xs: np.ndarray,
                      ws: np.ndarray, argnum: int) -> np.ndarray:
    eps = 1e-6
    base = [xs, ws][argnum]
    out = np.zeros_like(base)
    for idx in np.ndindex(base.shape):
        up, down = base.copy(), base.copy()
        up[idx] += eps
        down[idx] -= eps
        args_up = (up, ws) if argnum == 0 else (xs, up)
        args_down = (down, ws) if argnum == 0 else (xs, down)
        out[idx] = (f(*args_up) - f(*args_down)) / (2 * eps)
    return out


@pytest.mark.parametrize("fn", INLINE, ids=[f.__name__ for f in INLINE])
def test_gradients_of_compiled_code_calling_vmap(fn: Any) -> None:
    def loss(xs, ws):
        return float(np.sum(_inline_expected(fn.__name__, xs, ws) ** 2))

    for argnum in (0, 1):
        got = tl.grad(lambda xs, ws: np.sum(fn(xs, ws) ** 2), argnums=argnum)(XS, WS)  # noqa: B023
        np.testing.assert_allclose(got, _numeric_gradient(loss, XS, WS, argnum),
                                   rtol=1e-6, atol=1e-7)


def inline_wrong_length(xs):
    return tl.vmap(offset, in_axes=(0, None))(xs)


def test_inside_compiled_code_a_tuple_of_the_wrong_length_is_a_located_error() -> None:
    with pytest.raises(VmapError) as err:
        tl.jit(inline_wrong_length)(XS)
    message = str(err.value)
    assert "in_axes has 2 entries, but the call passes 1 positional argument" in message
    assert "tl.vmap(offset, in_axes=(0, None))(xs)" in message
    assert f"{__file__}:" in message


# --- compositions: vmap of grad, jit, vjp and jvp of vmap, vmap of vmap -------------------


def scalar_offset(x, w=W):
    return np.sum(w * w) * x * x + w[0, 1] * x


def test_vmap_of_grad_maps_a_defaulted_argument_passed() -> None:
    g = tl.vmap(tl.grad(scalar_offset))
    np.testing.assert_allclose(g(XS), 2 * np.sum(W * W) * XS + W[0, 1], rtol=1e-12)
    want = np.stack([tl.grad(scalar_offset)(x, w) for x, w in zip(XS, WS, strict=True)])
    np.testing.assert_allclose(g(XS, WS), want, rtol=1e-12)
    np.testing.assert_allclose(g(XS, w=WS), want, rtol=1e-12)
    wgrads = tl.vmap(tl.grad(scalar_offset, argnums=1))(XS, WS)
    np.testing.assert_allclose(wgrads, np.stack([tl.grad(scalar_offset, argnums=1)(x, w)
                                                 for x, w in zip(XS, WS, strict=True)]),
                               rtol=1e-12)


def test_vmap_of_grad_as_jax() -> None:
    jnp = pytest.importorskip("jax.numpy")
    import jax

    jax.config.update("jax_enable_x64", True)

    def j_scalar_offset(x, w=W):
        return jnp.sum(w * w) * x * x + w[0, 1] * x

    for args, kwargs in (((XS,), {}), ((XS, WS), {}), ((XS,), {"w": WS})):
        got = tl.vmap(tl.grad(scalar_offset))(*args, **kwargs)
        want = jax.vmap(jax.grad(j_scalar_offset))(*args, **kwargs)
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-12)


def test_jit_vjp_and_jvp_of_a_vmap_object_map_what_the_call_passes() -> None:
    v = tl.vmap(offset)
    mapped = np.stack([offset(x, w) for x, w in zip(XS, WS, strict=True)])
    np.testing.assert_allclose(tl.jit(v)(XS, WS), mapped, rtol=1e-12)
    np.testing.assert_allclose(tl.jit(v)(XS, w=WS), mapped, rtol=1e-12)
    np.testing.assert_allclose(tl.jit(v)(XS), np.stack([offset(x) for x in XS]), rtol=1e-12)
    out, vjp_fn = tl.vjp(v, XS, WS)
    np.testing.assert_allclose(out, mapped, rtol=1e-12)
    ct = RNG.normal(size=N)
    dx, dw = vjp_fn(ct)
    w2 = np.sum(WS * WS, axis=(1, 2))
    np.testing.assert_allclose(dx, ct * (w2 + WS[:, 0, 0] * np.cos(XS)), rtol=1e-12)
    want_dw = 2 * WS * (ct * XS)[:, None, None]
    want_dw[:, 0, 0] += ct * np.sin(XS)
    np.testing.assert_allclose(dw, want_dw, rtol=1e-12)
    tx, tw = RNG.normal(size=N), RNG.normal(size=(N, 3, 2))
    value, tangent = tl.jvp(v, (XS, WS), (tx, tw))
    np.testing.assert_allclose(value, mapped, rtol=1e-12)
    np.testing.assert_allclose(
        tangent, tx * (w2 + WS[:, 0, 0] * np.cos(XS)) + np.sum(2 * WS * tw, axis=(1, 2)) * XS
        + tw[:, 0, 0] * np.sin(XS), rtol=1e-12)


def test_vmap_of_vmap_passes_the_call_on() -> None:
    xss, wss = RNG.normal(size=(3, N)), RNG.normal(size=(3, N, 3, 2))
    vv = tl.vmap(tl.vmap(offset))
    want = np.stack([[offset(x, w) for x, w in zip(xr, wr, strict=True)]
                     for xr, wr in zip(xss, wss, strict=True)])
    np.testing.assert_allclose(vv(xss, wss), want, rtol=1e-12)
    np.testing.assert_allclose(vv(xss, w=wss), want, rtol=1e-12)
    np.testing.assert_allclose(vv(xss), np.vectorize(offset)(xss), rtol=1e-12)


def jvp_inside(xs, ws, tx, tw):
    return tl.jvp(tl.vmap(offset), (xs, ws), (tx, tw))


def test_jvp_of_vmap_inside_compiled_code_maps_every_primal() -> None:
    # (tl.jvp passes the primals positionally: each is mapped, as jax.jvp(jax.vmap(f)))
    tx, tw = RNG.normal(size=N), RNG.normal(size=(N, 3, 2))
    value, tangent = tl.jit(jvp_inside)(XS, WS, tx, tw)
    want_value, want_tangent = tl.jvp(tl.vmap(offset), (XS, WS), (tx, tw))
    np.testing.assert_allclose(value, want_value, rtol=1e-12)
    np.testing.assert_allclose(tangent, want_tangent, rtol=1e-12)


def call_given(fn, a, b):
    return fn(a, b)


def passed_as_a_value(xs, ws):
    return call_given(tl.vmap(offset), xs, ws)


def passed_as_a_lambda(xs, ws):
    return call_given(lambda x, w: tl.vmap(offset)(x, w), xs, ws)


def called_with_star(xs, ws):
    t = (xs, ws)
    return tl.vmap(offset)(*t)


def called_with_spread(xs, ws):
    d = {"w": ws} if xs.shape[0] > 0 else {}
    return tl.vmap(offset)(xs, **d)


@pytest.mark.parametrize("fn, how", [(passed_as_a_value, "passed as a value"),
                                     (called_with_star, "called with \\*args"),
                                     (called_with_spread, "called with \\*\\*kwargs")],
                         ids=["value", "star", "spread"])
def test_a_call_not_known_when_compiling_is_refused_where_it_is(fn: Any, how: str) -> None:
    # (which arguments it maps would depend on what each call passes)
    with pytest.raises(tl.CompileError, match=how) as err:
        tl.jit(fn)(XS, WS)
    assert f"{__file__}:" in str(err.value)
    mapped = np.stack([offset(x, w) for x, w in zip(XS, WS, strict=True)])
    np.testing.assert_allclose(tl.jit(passed_as_a_lambda)(XS, WS), mapped, rtol=1e-12)


def _scaled_by(x, w=2.0):
    return x * w


def test_source_for_shows_the_code_the_call_runs():
    # (the axes depend on the call: `source_for` with a defaulted parameter passed shows
    # it mapped, as the call runs it, not the code for the default passed whole)
    xs, ws = np.arange(3.0), np.array([1.0, 2.0, 3.0])
    for fn in (tl.vmap(_scaled_by), tl.jit(tl.vmap(_scaled_by))):
        np.testing.assert_array_equal(fn(xs, ws), xs * ws)
        source = fn.source_for(xs, ws)
        assert "return x * w" in source and "[:, None]" not in source, source
    passed_whole = tl.vmap(_scaled_by, in_axes=(0, None))
    np.testing.assert_array_equal(passed_whole(xs, ws), xs[:, None] * ws)
    assert "[:, None]" in passed_whole.source_for(xs, ws)


def _two(x, w):
    return x * w


def _maps_three_into_two(xs):
    return tl.vmap(_two, in_axes=(0, None, 0))(xs, 2.0)


def test_more_in_axes_than_parameters_is_a_located_error():
    # (from Python, at the user's call; in compiled code, at the `tl.vmap` written there)
    xs = np.arange(3.0)
    with pytest.raises(VmapError, match="in_axes has 3 entries") as info:
        tl.jit(tl.vmap(_two, in_axes=(0, None, 0)))(xs, 2.0)
    assert __file__ in str(info.value)
    with pytest.raises(VmapError, match="in_axes has 3 entries for a function of 2") as info:
        tl.jit(_maps_three_into_two)(xs)
    assert __file__ in str(info.value) and "tl.vmap(_two" in str(info.value)
