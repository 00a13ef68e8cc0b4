"""Compile time (CPU) of `tl.vmap(tl.hessian(f))` and of `tl.grad` of a function calling
it (issue 14), with f = sin(x0) x1 + x0^2 sum(x*x), batch 8, x of shape (3,) or (5,):
each in a fresh process, the trees given alternated, the first call's CPU time
(`time.process_time`) and the IR graphs made.

    python bench/bench_vmap_hessian.py                      # this tree
    python bench/bench_vmap_hessian.py --trees /tmp/base .  # two checkouts alternated
    python bench/bench_vmap_hessian.py --limit 120          # a process past 120 s: killed

A process killed at the limit is reported as "> limit"."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

PROBE = r"""
import json, sys, time
import numpy as np
import tapeless as tl
from tapeless.ir import nodes
count = [0]
init = nodes.Graph.__init__
def counting(self, *a, **k):
    count[0] += 1
    init(self, *a, **k)
nodes.Graph.__init__ = counting
f = lambda x: np.sin(x[0]) * x[1] + x[0] ** 2 * np.sum(x * x)
case, n = sys.argv[1], int(sys.argv[2])
xs = np.random.RandomState(0).randn(8, n)
t = time.process_time()
if case == "vmap":
    tl.vmap(tl.hessian(f))(xs)
else:
    tl.grad(lambda z: np.sum(tl.vmap(tl.hessian(f))(z)))(xs)
print(json.dumps({"cpu": time.process_time() - t, "graphs": count[0]}))
"""


def probe(tree: str, case: str, n: int, limit: float) -> dict | None:
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.abspath(tree), "src"),
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    # (in a file: tapeless reads the lambda's source)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(PROBE)
    try:
        out = subprocess.run([sys.executable, fh.name, case, str(n)], env=env,
                             capture_output=True, text=True, timeout=limit,
                             cwd=os.path.abspath(tree))
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1]}
    found: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trees", nargs="+", default=["."])
    ap.add_argument("--limit", type=float, default=300.0)
    ap.add_argument("--reps", type=int, default=1)
    args = ap.parse_args()
    for case in ("vmap", "grad"):
        for n in (3, 5):
            row = []
            for tree in args.trees:
                results = [probe(tree, case, n, args.limit) for _ in range(args.reps)]
                done = [r for r in results if r is not None and "cpu" in r]
                if done:
                    best = min(done, key=lambda r: r["cpu"])
                    row.append(f"{best['cpu']:.2f} s CPU, {best['graphs']} graphs")
                elif any(r is None for r in results):
                    row.append(f"> {args.limit:.0f} s (killed)")
                else:
                    row.append(str(results[0]))
            print(f"{case} n={n}: " + " | ".join(row), flush=True)


if __name__ == "__main__":
    main()
