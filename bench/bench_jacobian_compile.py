"""CPU time of the first call (the compile) of `tl.jacfwd(tl.jacrev(f))` compositions,
inside `tl.jit` and under `tl.vmap`, and the lines of the generated program, each case in
a fresh process per tree, the trees alternated (issue 14: transforms compose):

    python bench/bench_jacobian_compile.py --trees /tmp/base .

Each tree is a checkout whose src/ is measured. A case that raises prints its error."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

import tapeless as tl


def field(x):
    return np.sin(x) * x + np.roll(x, 1) ** 2 * 0.5


def f(x):
    return np.sin(x) * x[0]


def cube_sum(x):  # a number out: `tl.jacfwd(tl.jacrev(...))` is its Hessian
    return np.sum(x ** 3)


def looped(x):  # tests/test_compose_matrix.py's scalar loss with a loop and an if
    h = x
    s = 0.0
    for _ in range(2):
        if np.sum(h) > 0.0:
            h = np.sin(h) * h + 0.5
        else:
            h = np.cos(h) - h * 0.5
        s = s + np.sum(h * h) * 0.5
    return s


def closure_hessian(w, x):  # a closure over `w` (tests/test_hessian_closures.py)
    return tl.jacfwd(tl.jacrev(lambda v: np.sum(np.sin(w @ v)) + np.sum(v ** 3)))(x)


XS = np.random.default_rng(0).normal(size=(4, 3))
WS = np.random.default_rng(1).normal(size=(2, 3))


def cases() -> dict:
    def jit_of(g):
        def comp(x):
            return tl.jacfwd(tl.jacrev(g))(x)
        comp.__name__ = f"jacfwd_jacrev_{g.__name__}"
        return lambda: tl.jit(comp), XS[0]

    def vmap_of(g):
        return lambda: tl.vmap(tl.jacfwd(tl.jacrev(g))), XS

    def grad_of_vmap_of_jacfwd():
        def h(z):
            return np.sum(np.sin(tl.vmap(tl.jacfwd(f))(z)))
        return tl.grad(h)

    def python_of(g):
        return lambda: tl.jacfwd(tl.jacrev(g)), XS[0]

    def of_vmap(outer):
        def comp(x):
            return outer(tl.vmap(looped))(x)
        comp.__name__ = f"{outer.__name__}_vmap_looped"
        return lambda: tl.jit(comp), XS[:2, :2].reshape(2, 2)

    def closure():
        def comp(x):
            return closure_hessian(WS, x)
        return tl.jit(comp)

    return {"tl.jit(tl.jacfwd(tl.jacrev(field)))": jit_of(field),
            "tl.jit(tl.jacfwd(tl.jacrev(cube_sum)))": jit_of(cube_sum),
            "tl.jacfwd(tl.jacrev(cube_sum)), from Python": python_of(cube_sum),
            "tl.jit(tl.jacfwd(tl.jacrev(lambda v: ... w ...)))": (closure, XS[0]),
            "tl.jit(tl.jacfwd(tl.vmap(looped)))": of_vmap(tl.jacfwd),
            "tl.jit(tl.jacrev(tl.vmap(looped)))": of_vmap(tl.jacrev),
            "tl.jit(tl.jacfwd(tl.jacrev(f)))": jit_of(f),
            "tl.vmap(tl.jacfwd(tl.jacrev(field)))": vmap_of(field),
            "tl.vmap(tl.jacfwd(tl.jacrev(f)))": vmap_of(f),
            "tl.grad(sum(sin(tl.vmap(tl.jacfwd(f)))))": (grad_of_vmap_of_jacfwd, XS)}


def probe(name: str) -> None:
    make, x = cases()[name]
    fn = make()
    t0 = time.process_time()
    try:
        fn(x)
        status = "ok"
    except Exception as e:  # noqa: BLE001 (reported, as the table shows it)
        status = f"{type(e).__name__}"
    cpu = time.process_time() - t0
    lines = None
    get = getattr(fn, "_get", None)
    if status == "ok" and get is not None:
        lines = len(get((x,)).source.splitlines())
    print(json.dumps({"cpu": cpu, "status": status, "lines": lines}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trees", nargs="+", default=[os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))])
    ap.add_argument("--probe")
    ap.add_argument("--only", help="run the cases whose name contains this text")
    opts = ap.parse_args()
    if opts.probe:
        probe(opts.probe)
        return
    print("| composition | " + " | ".join(opts.trees) + " |")
    print("|---|" + "---:|" * len(opts.trees))
    for name in cases():
        if opts.only and opts.only not in name:
            continue
        row = []
        for tree in opts.trees:
            p = subprocess.run([sys.executable, os.path.abspath(__file__), "--probe", name],
                               cwd=tree, capture_output=True, text=True, timeout=900,
                               env={**os.environ, "PYTHONPATH": os.path.join(
                                   os.path.abspath(tree), "src")})
            if p.returncode != 0:
                row.append("failed")
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            cell = f"{r['cpu']:.2f} s" if r["status"] == "ok" else r["status"]
            if r["lines"] is not None:
                cell += f", {r['lines']:,} lines"
            row.append(cell)
        print(f"| `{name}` | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
