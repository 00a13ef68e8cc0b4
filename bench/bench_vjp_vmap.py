"""`tl.vjp` and `tl.jacrev` of a `tl.vmap` object (`tl.vjp(tl.vmap(f), x)`) and of a
function calling `tl.vmap` (`tl.vjp(lambda x: tl.vmap(f)(x), x)`): the lines of the
code run (`vjp_fn.source`), its `isinstance(` tests, and the time of a call (the vjp and
one backward pass; a whole Jacobian).

    python bench/bench_vjp_vmap.py

Times are the least of repeated runs of calls, the rows' runs interleaved
(`timing.best_times`), single-threaded BLAS; every result is checked against a loop
over the batch before it is timed."""

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
from tapeless import grad_api  # noqa: E402


def sin_square(x):
    return np.sin(x) * x**2


def cases() -> list[tuple[str, Callable[[Any], Any], Any, Callable[[Any], Any], np.ndarray]]:
    """(name, the function differentiated, its argument, one element's function)."""
    a = np.abs(np.random.default_rng(0).normal(size=1000)) * 100 + 0.01
    x = np.linspace(0.5, 2.0, 40)
    return [
        ("vmap(sin_square), 1000", tl.vmap(sin_square), a, sin_square),
        ("lambda: vmap(sin_square), 1000", lambda v: tl.vmap(sin_square)(v), a, sin_square),
        ("vmap(newton_sqrt), 1000", tl.vmap(vp.newton_sqrt), a, vp.newton_sqrt),
        ("lambda: vmap(newton_sqrt), 1000", lambda v: tl.vmap(vp.newton_sqrt)(v), a,
         vp.newton_sqrt),
        ("vmap(sin_square), 40", tl.vmap(sin_square), x, sin_square),
        ("vmap(newton_sqrt), 40", tl.vmap(vp.newton_sqrt), x, vp.newton_sqrt),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    opts = parser.parse_args()
    print(f"{'function':34s} {'lines':>6s} {'isinst':>6s} {'vjp us':>9s} {'jacrev us':>10s}")
    for name, fn, arg, one in cases():
        out, back = tl.vjp(fn, arg)
        ct = np.ones_like(arg)
        np.testing.assert_allclose(out, [one(e) for e in arg], rtol=1e-12, atol=1e-12)
        want = [tl.grad(one)(e) for e in arg]
        np.testing.assert_allclose(back(ct)[0], want, rtol=1e-12, atol=1e-12)
        source = getattr(back, "source", None)
        if source is None:  # (main: the vjp's one generic version)
            g = tl.api.graph_of(fn)
            source = grad_api._VJP_CACHE[g.id].source
        jac = tl.jacrev(fn)
        fns: list[Callable[[], Any]] = [lambda f=fn: tl.vjp(f, arg)[1](ct)]
        numbers = [10]
        if len(arg) <= 40:
            np.testing.assert_allclose(jac(arg), np.diag(want), rtol=1e-12, atol=1e-12)
            fns.append(lambda: jac(arg))
            numbers.append(2)
        t = best_times(fns, numbers, opts.repeat)
        print(f"{name:34s} {len(source.splitlines()):6d} {source.count('isinstance('):6d} "
              f"{t[0] * 1e6:9.1f} " + (f"{t[1] * 1e6:10.1f}" if len(t) > 1 else f"{'-':>10s}"))


if __name__ == "__main__":
    main()
