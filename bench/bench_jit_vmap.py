"""Transforms applied to a `tl.vmap` object directly (`tl.jit(tl.vmap(f))`, the JAX
idiom), against the spelling that calls `tl.vmap` inside a function
(`tl.jit(lambda a: tl.vmap(f)(a))`) or `tl.vmap(f)` alone: the lines of the generated
code for the arguments (`.source_for`) and the time of a call.

    python bench/bench_jit_vmap.py            # Python backend
    python bench/bench_jit_vmap.py --native   # tl.jit(..., backend="native") instead

Times are the least of repeated runs of calls, the spellings' runs interleaved
(`timing.best_times`), single-threaded BLAS; every result is checked against the other
spelling's before it is timed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from timing import best_times, single_threaded  # noqa: E402

single_threaded()

import numpy as np  # noqa: E402
import vmap_programs as vp  # noqa: E402

import tapeless as tl  # noqa: E402


def tolerance(a, tol):
    """Newton's square root to a tolerance given unmapped (`in_axes=(0, None)`)."""
    x = a
    while abs(x * x - a) > tol * a:
        x = 0.5 * (x + a / x)
    return x


def smooth(x):
    """An elementwise function with a loop, for the Jacobians of its `tl.vmap`."""
    y = x
    for _ in range(3):
        y = np.sin(y) * x + 0.5 * y
    return y


def cases() -> list[tuple[str, Any, Any, tuple]]:
    """(name, the transform of the `tl.vmap` object, the other spelling, arguments)."""
    rng = np.random.default_rng(0)
    a = np.abs(rng.normal(size=1000)) * 100 + 0.01
    grid = a.reshape(20, 50)
    W1, b1, W2, b2, X = vp.mlp_problem(32)
    params = (W1, b1, W2, b2)
    x = rng.normal(size=40)
    return [
        ("jit(vmap(newton_sqrt))", tl.jit(tl.vmap(vp.newton_sqrt)),
         tl.jit(lambda a: tl.vmap(vp.newton_sqrt)(a)), (a,)),
        ("jit(vmap(newton_cbrt))", tl.jit(tl.vmap(vp.newton_cbrt)),
         tl.jit(lambda a: tl.vmap(vp.newton_cbrt)(a)), (a,)),
        ("jit(vmap(f, in_axes=(0, None)))", tl.jit(tl.vmap(tolerance, in_axes=(0, None))),
         tl.jit(lambda a, t: tl.vmap(tolerance, in_axes=(0, None))(a, t)), (a, 1e-12)),
        ("vmap(vmap(newton_cbrt))", tl.vmap(tl.vmap(vp.newton_cbrt)),
         tl.vmap(lambda r: tl.vmap(vp.newton_cbrt)(r)), (grid,)),
        ("jit(vmap(grad(mlp)))", tl.jit(tl.vmap(tl.grad(vp.mlp_loss_params), in_axes=(None, 0))),
         tl.vmap(tl.grad(vp.mlp_loss_params), in_axes=(None, 0)), (params, X)),
        ("jit(vmap(grad(newton_cbrt)))", tl.jit(tl.vmap(tl.grad(vp.newton_cbrt))),
         tl.vmap(tl.grad(vp.newton_cbrt)), (a,)),
        ("jacrev(vmap(smooth))", tl.jacrev(tl.vmap(smooth)),
         tl.jacrev(lambda x: tl.vmap(smooth)(x)), (x,)),
        ("jacfwd(vmap(smooth))", tl.jacfwd(tl.vmap(smooth)),
         tl.jacfwd(lambda x: tl.vmap(smooth)(x)), (x,)),
        ("grad(sum . vmap(smooth))", tl.grad(lambda x: np.sum(tl.jit(tl.vmap(smooth))(x))),
         tl.grad(lambda x: np.sum(tl.vmap(smooth)(x))), (x,)),
    ]


def native_cases() -> list[tuple[str, Any, Any, tuple]]:
    """The Newton rows with `backend="native"` (the row says where one falls back)."""
    a = np.abs(np.random.default_rng(0).normal(size=1000)) * 100 + 0.01
    return [
        ("native jit(vmap(newton_sqrt))", tl.jit(tl.vmap(vp.newton_sqrt), backend="native"),
         tl.jit(lambda a: tl.vmap(vp.newton_sqrt)(a), backend="native"), (a,)),
        ("native jit(vmap(newton_cbrt))", tl.jit(tl.vmap(vp.newton_cbrt), backend="native"),
         tl.jit(lambda a: tl.vmap(vp.newton_cbrt)(a), backend="native"), (a,)),
    ]


def lines(fn: Any, args: tuple) -> str:
    source_for = getattr(fn, "source_for", None)
    return str(len(source_for(*args).splitlines())) if source_for is not None else "-"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--native", action="store_true")
    parser.add_argument("--repeat", type=int, default=30)
    opts = parser.parse_args()
    rows = native_cases() if opts.native else cases()
    print(f"{'composition':34s} {'lines':>7s} {'other':>7s} {'us':>9s} {'other us':>9s}")
    for name, wrapped, other, args in rows:
        got, want = wrapped(*args), other(*args)
        for g, w in zip(_leaves(got), _leaves(want), strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
        fns: list[Callable[[], Any]] = [lambda f=wrapped: f(*args), lambda f=other: f(*args)]
        t = best_times(fns, [10, 10], opts.repeat)
        fallback = getattr(getattr(wrapped._get(args), "fn", None), "fallback", None) \
            if hasattr(wrapped, "_get") else None
        print(f"{name:34s} {lines(wrapped, args):>7s} {lines(other, args):>7s} "
              f"{t[0] * 1e6:9.1f} {t[1] * 1e6:9.1f}" + (f"  (falls back: {fallback})"
                                                        if fallback else ""))


def _leaves(x: Any) -> list[Any]:
    if isinstance(x, (tuple, list)):
        return [leaf for item in x for leaf in _leaves(item)]
    return [x]


if __name__ == "__main__":
    main()
