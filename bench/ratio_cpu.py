"""CPU time of a bench workload's compiled objective and gradient (`tl.jit(f)` and
`tl.grad(f)`, and the hand-written gradient where `bench/run.py` has one), in a fresh
process per tree, the trees' processes alternated: base and branch side by side in one
run, on a loaded machine (`time.process_time`, the least of each process's calls).

    python bench/ratio_cpu.py --trees /tmp/base . --only lstm_2_1024:0 --reps 3
    python bench/ratio_cpu.py --probe KEY --calls 15      # one process (internal)

Keys are those of `bench/compile_cpu.py`, and `CASE:i` for variant i of a `bench/run.py`
case (`lstm_2_1024:1`: the LSTM with its layer loop inlined). Prints, per workload and
tree, the least times over the processes and gradient ÷ objective."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def probe(key: str, calls: int) -> None:
    sys.path.insert(0, HERE)
    import compile_cpu
    import run as R

    import tapeless as tl

    cases = {f"{rc.key}:{i}": (v[1], rc.data, rc.argnums, rc.hand)
             for rc in R.cases(False, False) for i, v in enumerate(rc.variants)}
    fn, data, argnums, hand = cases.get(key) or (*compile_cpu.workloads()[key], None)
    args = data()
    fns = {"objective": tl.jit(fn), "gradient": tl.grad(fn, argnums=argnums)}
    if hand is not None:
        fns["hand-written gradient"] = hand
    best = {k: float("inf") for k in fns}
    for f in fns.values():
        f(*args)
    for _ in range(calls):  # (interleaved: a loaded stretch falls on each alike)
        for k, f in fns.items():
            t0 = time.process_time()
            f(*args)
            best[k] = min(best[k], time.process_time() - t0)
    print(json.dumps(best))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trees", nargs="+", default=[os.path.dirname(HERE)])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--calls", type=int, default=15)
    ap.add_argument("--only", default="lstm_2_1024:0")
    ap.add_argument("--probe")
    opts = ap.parse_args()
    if opts.probe:
        probe(opts.probe, opts.calls)
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    print("| workload | tree | objective (ms) | gradient (ms) | gradient ÷ objective | "
          "hand-written gradient (ms) |")
    print("|---|---|---:|---:|---:|---:|")
    for key in opts.only.split(","):
        times: dict[str, dict[str, float]] = {t: {} for t in opts.trees}
        for _ in range(opts.reps):
            for tree in opts.trees:
                # (run from the tree's root: its src/ is on the path, see README)
                p = subprocess.run([sys.executable, os.path.abspath(__file__), "--probe", key,
                                    "--calls", str(opts.calls)],
                                   cwd=tree, capture_output=True, text=True, timeout=900,
                                   env={**env, "PYTHONPATH": os.path.join(
                                       os.path.abspath(tree), "src")})
                if p.returncode != 0:
                    print(p.stderr, file=sys.stderr)
                    continue
                for k, v in json.loads(p.stdout.strip().splitlines()[-1]).items():
                    times[tree][k] = min(times[tree].get(k, float("inf")), v)
        for tree, t in times.items():
            obj, grad = t.get("objective", float("nan")), t.get("gradient", float("nan"))
            hand = t.get("hand-written gradient")
            print(f"| {key} | {tree} | {1e3 * obj:.1f} | {1e3 * grad:.1f} | {grad / obj:.2f} | "
                  + (f"{1e3 * hand:.1f}" if hand is not None else "–") + " |", flush=True)


if __name__ == "__main__":
    main()
