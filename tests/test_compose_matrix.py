"""Marked slow, not run by CI (about 10-12 minutes on the loaded 2-core machine):
(2026-12-07, branch hessclos: vmap.hessian on `looped`, hessian.vmap on `closed` and
jacrev.vmap on `looped` compiled pass, their marks are gone; jacfwd.jacrev compiled
raised a VmapError (`sens_of` of a function made in the mapped code, which forward
mode writes) and passes since `batch.py` passes `sens_of(d, f)` through as `d`, its
mark is gone; it compiles slowly, about 80 s of CPU, the jacrev's `tl.vmap` inside the
jvp batched without its arguments' kinds.)
(2026-12-07, branch vmapfix: vmap.jacfwd compiled and jacfwd.vmap on `looped`
compiled pass now, their marks are gone; jacrev.vmap's MASKED_IF mark, the same error,
made non-strict (not rerun); vmap.hessian, hessian.vmap on `closed` and jacfwd.jacrev
compiled did not finish on the machine, loaded 10-12, in the time left: their marks
are as they were, unverified.)
`python -m pytest -q -n 2 -m slow tests/test_compose_matrix.py`. Its xfail marks were
checked on 2026-12-07 after commit 27e3a0c (grad of a function calling tl.vmap of a
gradient): tl.vmap of tl.jacrev passes both ways and its mark is gone; tl.vmap of
tl.jacfwd and of tl.hessian pass from Python, their marks are left (not strict) on the
compiled cases only; the third derivative through x[::-1] passes. The other marks were
not rerun to the end (the machine was too loaded): strict ones fail once fixed.

A matrix of transform compositions (README: "every transform composes with every
other, in any order and inside compiled code").

Each case is a chain of transforms, outermost first, applied to a test function; the
chain is written once as Python text, `def comp(x): return <chain>(x)`, and run two ways:
called from Python (each `tl.*` call runs eagerly) and compiled whole by `tl.jit` (the
transforms written inside compiled code). The Python result is checked against an
independent reference for the outermost transform (central finite differences, a loop
over the batch for `tl.vmap`, the identity for `tl.jit` and `tl.checkpoint`) applied to
the rest of the chain called from Python; the compiled result against the Python one, to
1e-12. The innermost item may wrap the test function: a `tl.custom_jvp` or
`tl.custom_vjp` function inside it, a `tl.stop_gradient` of it (every derivative zero),
or a closure defined in `comp` over one of its locals."""

from __future__ import annotations

import linecache
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tapeless as tl

pytestmark = pytest.mark.slow

# --- the test functions (x of shape (3,)) --------------------------------------------


def field(x):  # array in, array out
    return np.sin(x) * x + np.roll(x, 1) ** 2 * 0.5


def looped(x):  # a scalar loss with a loop and an if
    h = x
    s = 0.0
    for _ in range(2):
        if np.sum(h) > 0.0:
            h = np.sin(h) * h + 0.5
        else:
            h = np.cos(h) - h * 0.5
        s = s + np.sum(h * h) * 0.5
    return s


def closed(x):  # a closure over a local
    w = np.cos(x) + 2.0

    def inner(v):
        return np.sum(np.sin(v * w) * v)

    return inner(x) + inner(x[::-1]) * 0.5


@tl.custom_jvp
def softplus(x):
    return np.log1p(np.exp(x))


@softplus.defjvp
def softplus_jvp(primals, tangents):
    (x,) = primals
    (t,) = tangents
    return softplus(x), t / (1.0 + np.exp(-x))


@tl.custom_vjp
def half_cube(x):
    return 0.5 * x ** 3


def half_cube_fwd(x):
    return half_cube(x), x


def half_cube_bwd(x, g):
    return (g * 1.5 * x ** 2,)


half_cube.defvjp(half_cube_fwd, half_cube_bwd)

FUNCTIONS = {"field": field, "looped": looped, "closed": closed}
CHECKPOINTED = {k: tl.checkpoint(f) for k, f in FUNCTIONS.items()}

# --- the transforms, as text: {G} a function expression, {u} a fresh parameter ----------

OUTER = {
    "grad": "tl.grad(lambda {u}: np.sum(np.sin(({G})({u}))))",
    "jvp": "(lambda {u}: tl.jvp({G}, ({u},), (np.cos({u}),))[1])",
    "vmap": "tl.vmap({G})",
    "jacfwd": "tl.jacfwd({G})",
    "jacrev": "tl.jacrev({G})",
    "hessian": "tl.hessian(lambda {u}: np.sum(np.sin(({G})({u}))))",
    "jit": "tl.jit({G})",
}
DIFFERENTIATES = {"grad", "jvp", "jacfwd", "jacrev", "hessian"}
# the innermost item: the test function F, or F wrapped
INNER = {
    "F": "F",
    "custom_jvp": "(lambda {u}: F(softplus({u})))",
    "custom_vjp": "(lambda {u}: F(half_cube({u})))",
    "stop_gradient": "(lambda {u}: tl.stop_gradient(F({u})))",
    "closure": "Fl",  # def Fl(v): return F(v) * s, with s a local of comp
    "checkpoint": "ckF",  # ckF = tl.checkpoint(F), made outside
}
PRELUDE = {"closure": "    s = 1.5\n\n    def Fl(v):\n        return F(v) * s\n\n"}
PLAIN_INNER = {  # the same functions in NumPy, for the references
    "F": lambda F: F,
    "custom_jvp": lambda F: lambda u: F(np.log1p(np.exp(u))),
    "custom_vjp": lambda F: lambda u: F(0.5 * u ** 3),
    "stop_gradient": lambda F: F,  # (derivatives: zero, below)
    "closure": lambda F: lambda u: F(u) * 1.5,
    "checkpoint": lambda F: F,
}


def chain_text(chain: tuple[str, ...]) -> str:
    *outer, inner = chain
    text = INNER[inner].format(u="u0")
    for i, name in enumerate(reversed(outer)):
        text = OUTER[name].format(G=text, u=f"u{i + 1}")
    return text


_made: dict[tuple[Any, ...], Callable[..., Any]] = {}


def composition(chain: tuple[str, ...], fname: str) -> Callable[..., Any]:
    """`comp(x)`: the chain applied to the test function, as source text (so that
    `tl.jit` compiles it like any function)."""
    key = (chain, fname)
    if key not in _made:
        name = "comp_" + "_".join(chain) + "_" + fname
        source = f"def {name}(x):\n{PRELUDE.get(chain[-1], '')}" \
                 f"    return ({chain_text(chain)})(x)\n"
        filename = f"<compose matrix {name}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace = {"tl": tl, "np": np, "F": FUNCTIONS[fname], "softplus": softplus,
                     "half_cube": half_cube, "__name__": __name__,
                     "ckF": CHECKPOINTED[fname]}
        exec(compile(source, filename, "exec"), namespace)
        _made[key] = namespace[name]
    return _made[key]


# --- references -------------------------------------------------------------------

H = 1e-5


def fd_jacobian(g: Callable[..., Any], x: Any) -> Any:
    """Central differences: shape(g(x)) + shape(x)."""
    y0 = np.asarray(g(x))
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = H
        e = e.reshape(x.shape)
        cols.append((np.asarray(g(x + e)) - np.asarray(g(x - e))) / (2 * H))
    return np.moveaxis(np.array(cols), 0, -1).reshape(y0.shape + x.shape)


def reference_outer(name: str, g: Callable[..., Any], x: Any) -> Any:
    """What transform `name` of g gives at x, computed without it."""
    if name == "jit":
        return g(x)
    if name == "vmap":
        return np.stack([np.asarray(g(xi)) for xi in x])
    if name == "grad":
        return fd_jacobian(lambda u: np.sum(np.sin(g(u))), x)
    if name == "jvp":
        c = np.cos(x)
        return (np.asarray(g(x + H * c)) - np.asarray(g(x - H * c))) / (2 * H)
    if name in ("jacfwd", "jacrev"):
        return fd_jacobian(g, x)
    assert name == "hessian"
    return fd_jacobian(tl.grad(lambda u: np.sum(np.sin(g(u)))), x)


def reference(chain: tuple[str, ...], fname: str, x: Any) -> Any:
    *outer, inner = chain
    if inner == "stop_gradient":
        plain = reference((*outer, "F"), fname, x)
        return plain * 0.0 if DIFFERENTIATES & set(outer) else plain
    if not outer:
        return PLAIN_INNER[inner](FUNCTIONS[fname])(x)
    rest = tuple(chain[1:])
    g = composition(rest, fname) if len(rest) > 1 else PLAIN_INNER[inner](FUNCTIONS[fname])
    return reference_outer(outer[0], g, x)


def point(chain: tuple[str, ...], fname: str) -> Any:
    batch = (2,) * chain.count("vmap")
    rng = np.random.default_rng(zlib.crc32(repr((chain, fname)).encode()))
    return rng.uniform(-1.0, 1.0, size=batch + (3,))


# --- the matrix -------------------------------------------------------------------

SCALAR = ("looped", "closed")


PAIRS = {  # outer: the inner transforms it is composed with
    "grad": ("grad", "jvp", "vmap", "jacfwd", "jacrev", "hessian", "jit"),
    "jvp": ("grad", "jvp", "vmap", "jacfwd", "jacrev", "hessian", "jit"),
    "vmap": ("grad", "jvp", "vmap", "jacfwd", "jacrev", "hessian", "jit"),
    "jacfwd": ("grad", "vmap", "jacrev"),
    "jacrev": ("jvp", "vmap"),
    "hessian": ("vmap", "jit"),
    "jit": ("grad", "vmap", "hessian"),
}
WRAPPED = {  # outer: the wrapped functions it is applied to
    "grad": ("custom_jvp", "custom_vjp", "stop_gradient", "closure", "checkpoint"),
    "vmap": ("custom_vjp", "stop_gradient", "closure"),
    "jvp": ("custom_vjp", "closure"),
    "hessian": ("custom_jvp", "checkpoint"),
    "jacrev": ("stop_gradient",),
}
TRIPLES = [("jit", "vmap", "grad", "F"), ("grad", "jit", "hessian", "F"),
           ("vmap", "grad", "closure"), ("jit", "vmap", "grad", "closure")]


def cases() -> list[Any]:
    """(chain, test function): first derivatives on the three functions in turn,
    second and third derivatives on `field` (those of the loop compile slowly)."""
    out: list[Any] = []
    k = 0
    for a, inners in PAIRS.items():
        for b in inners:
            fname = "field" if {a, b} <= DIFFERENTIATES else list(FUNCTIONS)[k % 3]
            k += 1
            out.append(((a, b, "F"), fname))
    for a, wrapped in WRAPPED.items():
        for inner in wrapped:
            out.append(((a, inner), list(FUNCTIONS)[k % 3]))
            k += 1
    out.extend((t, "field") for t in TRIPLES)
    return out


# Known failures: (chain, fname, mode) -> reason; mode None for both.
XFAIL: dict[tuple[Any, ...], tuple[str, bool]] = {
}


def marks(chain: tuple[str, ...], fname: str, mode: str) -> list[Any]:
    for key in ((chain, fname, mode), (chain, fname, None), (chain, None, mode),
                (chain, None, None)):
        if key in XFAIL:
            reason, strict = XFAIL[key]
            return [pytest.mark.xfail(strict=strict, reason=reason)]
    return []


PARAMS = [pytest.param(chain, fname, mode, id=f"{'.'.join(chain)}-{fname}-{mode}",
                       marks=marks(chain, fname, mode))
          for chain, fname in cases() for mode in ("python", "compiled")]


@pytest.mark.parametrize(("chain", "fname", "mode"), PARAMS)
def test_composition(chain: tuple[str, ...], fname: str, mode: str) -> None:
    x = point(chain, fname)
    comp = composition(chain, fname)
    if mode == "python":
        got = np.asarray(comp(x))
        want = np.asarray(reference(chain, fname, x))
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        return
    compiled = np.asarray(tl.jit(comp)(x))
    try:
        got = np.asarray(comp(x))
    except tl.TapelessError:  # (from Python: the xfails below; the reference, then)
        want = np.asarray(reference(chain, fname, x))
        assert compiled.shape == want.shape
        np.testing.assert_allclose(compiled, want, rtol=1e-6, atol=1e-7)
        return
    assert compiled.shape == got.shape
    np.testing.assert_allclose(compiled, got, rtol=1e-12, atol=1e-12)


def reversed_product(x):
    return np.sum(np.sin(x[::-1] * np.cos(x)))


def test_third_derivative_through_a_reversed_slice() -> None:
    # (found by grad.hessian on `closed`; fixed with tests/test_grad_of_vmap_of_grad.py)
    x = np.array([0.3, -0.7])
    g = tl.grad(lambda u: np.sum(tl.hessian(reversed_product)(u)))(x)
    fd = fd_jacobian(lambda u: np.sum(tl.hessian(reversed_product)(u)), x)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7)


def test_checkpoint_written_inside_compiled_code_is_refused_where_written() -> None:
    # (`tl.checkpoint(f)` made outside, a global, is in the matrix: "checkpoint")
    with pytest.raises(tl.CompileError, match=r"tl.checkpoint\(...\) inside compiled code "
                       "is not supported") as e:
        tl.jit(lambda x: tl.checkpoint(field)(x))(np.ones(3))
    assert "test_compose_matrix.py" in str(e.value)
