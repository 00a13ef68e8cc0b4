"""Masked loops whose state changes shape (issue 14, `brk.py`): a loop over a list of
layers of different widths with a data-dependent `break`, under `tl.vmap` and
`tl.vmap(tl.grad)`, and what the shape checks of masked loops' selects cost the Newton
loops and the per-example MLP gradients.

`python bench/bench_vmap_ragged.py --against /tmp/base_src` times this tree's compiler
and another copy of tapeless's `src` (a base) side by side: each round runs one process
per tree, alternately, and each reports its least CPU time a call (`time.process_time`)
per workload; the least over the rounds is kept. A workload the base cannot run is
reported as failing there."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def _workloads():  # (run in the child process, with the tree's tapeless first)
    import numpy as np

    sys.path.insert(0, str(HERE))
    import vmap_programs as vp

    import tapeless as tl

    rng = np.random.default_rng(0)
    params = [(rng.normal(size=(16, 32)), rng.normal(size=32)),
              (rng.normal(size=(32, 8)), 0.5),
              (rng.normal(size=(8, 16)), rng.normal(size=16))]

    def loss(params, x, y, t):
        h = x
        for W, b in params:
            h = np.tanh(h @ W + b)
            if np.sum(h) > t:
                break
        return np.sum((h[:1] - y) ** 2)

    n = 256
    xs = rng.normal(size=(n, 16))
    ys = rng.normal(size=(n, 1))
    none = np.full(n, np.inf)
    mixed = np.where(np.arange(n) % 2 == 0, -np.inf, np.inf)
    v = tl.vmap(loss, in_axes=(None, 0, 0, 0))
    pg = tl.vmap(tl.grad(loss), in_axes=(None, 0, 0, 0))
    a = np.abs(rng.normal(size=1000)) * 100 + 0.01
    vs, vc = tl.vmap(vp.newton_sqrt), tl.vmap(vp.newton_cbrt)
    W1, b1 = rng.normal(size=(64, 64)) / 8, rng.normal(size=64)
    W2, b2 = rng.normal(size=(64, 64)) / 8, rng.normal(size=64)
    X = rng.normal(size=(256, 64))
    g = tl.grad(loss)
    mlp = tl.vmap(tl.grad(vp.mlp_loss, argnums=(0, 1, 2, 3)), in_axes=(None,) * 4 + (0,))
    return {
        "Newton sqrt, batch 1000 (tl.vmap)": lambda: vs(a),
        "Newton cube root, break, batch 1000 (tl.vmap)": lambda: vc(a),
        "per-example MLP grads, batch 256": lambda: mlp(W1, b1, W2, b2, X),
        "layer loop with a break, no element breaks, tl.vmap, batch 256":
            lambda: v(params, xs, ys, none),
        "layer loop, half break on the first trip, tl.vmap (per element)":
            lambda: v(params, xs, ys, mixed),
        "layer loop, no element breaks, tl.vmap(tl.grad), batch 256":
            lambda: pg(params, xs, ys, none),
        "layer loop, half break on the first trip, tl.vmap(tl.grad) (per element)":
            lambda: pg(params, xs, ys, mixed),
        "(a Python loop of tl.grad, half break on the first trip)":
            lambda: [g(params, xs[i], ys[i], mixed[i]) for i in range(n)],
    }


def child(rounds: int) -> None:
    out = {}
    for name, fn in _workloads().items():
        try:
            fn()
        except Exception as exc:  # (the base fails where the bug was)
            out[name] = f"fails: {type(exc).__name__}"
            continue
        number = 1
        start = time.process_time()
        fn()
        once = time.process_time() - start
        number = max(1, int(0.05 / max(once, 1e-6)))
        best = float("inf")
        for _ in range(rounds):
            start = time.process_time()
            for _ in range(number):
                fn()
            best = min(best, (time.process_time() - start) / number)
        out[name] = best
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", help="another tapeless src folder (the base)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(5)
        return
    trees = {"branch": str(HERE.parent / "src")}
    if args.against:
        trees = {"base": args.against, **trees}
    best: dict[str, dict[str, object]] = {t: {} for t in trees}
    for k in range(args.rounds):
        for tree, src in trees.items():
            env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1",
                   "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            res = subprocess.run([sys.executable, __file__, "--child"], env=env,
                                 capture_output=True, text=True, check=True, cwd="/")
            for name, t in json.loads(res.stdout.splitlines()[-1]).items():
                old = best[tree].get(name)
                best[tree][name] = t if not isinstance(t, float) or not \
                    isinstance(old, float) else min(old, t)
        print(f"(after round {k + 1})")
        _table(trees, best)


def _table(trees: dict[str, str], best: dict[str, dict[str, object]]) -> None:
    names = list(best["branch"])
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print("| workload | " + " | ".join(trees) + " | branch ÷ base |")
    print("|---|" + "---:|" * (len(trees) + 1))
    for name in names:
        vals = [best[t].get(name) for t in trees]
        cells = [f"{v * 1e3:.3f} ms" if isinstance(v, float) else str(v) for v in vals]
        ratio = f"{vals[-1] / vals[0]:.2f}" if len(vals) == 2 and all(
            isinstance(v, float) for v in vals) else ""
        print(f"| {name} | " + " | ".join(cells) + f" | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
