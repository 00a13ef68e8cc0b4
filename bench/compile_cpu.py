"""CPU time of the compile (the first `tl.grad(f)._get(args)`, after a warm-up compile of
`workloads.warmup_function`, as `bench/run.py --probe compile tapeless CASE warm` does) of
every bench workload: each spelling of `bench_control.py` and each case of `bench/run.py`,
in a fresh process each. `time.process_time` is given, which a loaded machine inflates
less than wall time.

    python bench/compile_cpu.py                         # this tree, 3 processes each
    python bench/compile_cpu.py --trees /tmp/base .     # two trees alternated (each a
                                                        # checkout: its src/ is measured)
    python bench/compile_cpu.py --only particle:0,lstm_2_1024:0 --reps 5
    python bench/compile_cpu.py --probe KEY [--source FILE]   # one process (internal)

Prints, per workload, the least CPU time over the processes of each tree (with
`--median`, the least and the median, and the ratio of the medians to the first tree's)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def workloads() -> dict:
    sys.path.insert(0, HERE)
    import bench_control as BC
    import run as R

    out = {}
    for c in BC.CASES:
        for i, (_, fn) in enumerate(c.spellings):
            out[f"{c.key}:{i}"] = (fn, c.data, c.argnums)
    for rc in R.cases(False, False):
        out[f"{rc.key}:0"] = (rc.variants[0][1], rc.data, rc.argnums)
    return out


def probe(key: str, source: str | None) -> None:
    import numpy as np
    import workloads as W

    import tapeless as tl

    fn, data, argnums = workloads()[key]
    args = data()
    a = np.ones((3, 3))
    tl.grad(W.warmup_function, argnums=(0, 1))(a, a)
    g = tl.grad(fn, argnums=argnums)
    t0 = time.process_time()
    compiled = g._get(args)
    t1 = time.process_time()
    if source:
        with open(source, "w") as fh:
            fh.write(compiled.source)
    print(json.dumps({"cpu": t1 - t0}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trees", nargs="+", default=[os.path.dirname(HERE)])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="")
    ap.add_argument("--probe")
    ap.add_argument("--source")
    ap.add_argument("--median", action="store_true")
    opts = ap.parse_args()
    if opts.probe:
        probe(opts.probe, opts.source)
        return
    keys = opts.only.split(",") if opts.only else list(workloads())
    med = opts.median
    cols = [f"CPU ms, {t}" + (" (least / median)" if med else "") for t in opts.trees]
    if med and len(opts.trees) > 1:
        cols += [f"median ratio, {t}" for t in opts.trees[1:]]
    print("| workload | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for key in keys:
        times: dict[str, list[float]] = {t: [] for t in opts.trees}
        for _ in range(opts.reps):
            for tree in opts.trees:
                # (run from the tree's root: its src/ is on the path, see README)
                p = subprocess.run([sys.executable, os.path.abspath(__file__), "--probe", key],
                                   cwd=tree, capture_output=True, text=True, timeout=600,
                                   env={**os.environ, "PYTHONPATH": os.path.join(
                                       os.path.abspath(tree), "src")})
                if p.returncode == 0:
                    times[tree].append(json.loads(p.stdout.strip().splitlines()[-1])["cpu"])
        row = []
        for t in opts.trees:
            least = 1e3 * min(times[t], default=float("inf"))
            row.append(f"{least:,.0f}" + (f" / {1e3 * _median(times[t]):,.0f}" if med else ""))
        if med and len(opts.trees) > 1:
            first = _median(times[opts.trees[0]])
            row += [f"{_median(times[t]) / first:.2f}" for t in opts.trees[1:]]
        print(f"| {key} | " + " | ".join(row) + " |", flush=True)


def _median(xs: list[float]) -> float:
    if not xs:
        return float("inf")
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


if __name__ == "__main__":
    main()
