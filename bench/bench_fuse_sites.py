"""Gradients of recursions whose backward pass `opt/unwind.py` may fuse into the forward
one (issue 12), where the caller reads the recursion's value nonlinearly (the
sensitivity given to the backward recursion is made of the value: the forward pass must
run whole first) and `value_and_grad` of recursions, beside the bench's determinant and
walk (bench/control_programs.py) as they are. CPU time (`time.process_time`, the least
of interleaved calls), in a fresh process per tree, the trees' processes alternated:
base and branch side by side in one run.

    python bench/bench_fuse_sites.py --trees /tmp/base/src src --reps 3
    python bench/bench_fuse_sites.py --probe --calls 20     # one process (internal)

Each tree is a `src` folder (put first on sys.path). Prints, per program, the least time
of each tree over its processes and branch ÷ base; every gradient is checked against the
other tree's (printed as the largest relative difference)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


# --- programs (written for this bench, not the issue's) ---------------------------------


def chain(x, i):
    """A signed linear recursion, no loop."""
    if i == x.shape[0]:
        return 0.7
    return -0.5 * x[i] * chain(x, i + 1) + 0.7 * np.sin(x[i])


def chain_square(x):
    v = chain(x, 0)
    return v * v + np.sin(v)


def minor(A, row, cols):
    """Laplace expansion, the coefficient a function of the entry (a recursion running a
    loop, reading its callees' values)."""
    if len(cols) == 1:
        return A[row, cols[0]]
    total = 0.0
    for k in range(len(cols)):
        a = A[row, cols[k]]
        total = total + minor(A, row + 1, cols[k + 1:] + cols[:k]) * (a * a - 0.5)
    return total


def perm_log(A):
    p = minor(A, 0, list(range(A.shape[0])))
    return np.log(p * p + 1.0)


def det_square(A):
    import control_programs as C

    d = C.det_laplace(A)
    return d * d + np.sin(d)


def path(A, i):
    """Two entries of a large matrix per level; the level reads nothing of its callee."""
    n = A.shape[0]
    if i == n:
        return 0.0
    return A[i, i] * A[i, (3 * i + 1) % n] + path(A, i + 1)


def path_square(A):
    w = path(A, 0)
    return w * w + np.cos(w)


def outer(x, i):
    """A recursion whose level reads an inner recursion's value nonlinearly: the inner
    backward recursion's sensitivity is made of its value."""
    if i == 4:
        return 0.0
    v = chain(x, i)
    return np.tanh(v) + outer(x, i + 1)


def outer_loss(x):
    return outer(x, 0)


def programs():
    import control_handwritten as CH
    import control_programs as C

    x = np.random.default_rng(1).normal(size=300) * 0.5
    A6 = np.random.default_rng(2).normal(size=(6, 6)) * 0.8
    A600 = C.walk_data()[0]
    D7 = C.det_data()[0]
    return {
        "chain, v*v + sin(v): grad": ("grad", chain_square, x),
        "permanent, log(p*p + 1): grad": ("grad", perm_log, A6),
        "permanent 7x7, log(p*p + 1): grad": ("grad", perm_log, D7),
        "det_laplace 7x7, d*d + sin(d): grad": ("grad", det_square, D7),
        "det_laplace 7x7, d*d + sin(d): native grad": ("native", det_square, D7),
        "path, w*w + cos(w): grad": ("grad", path_square, A600),
        "tanh of an inner recursion, per level: grad": ("grad", outer_loss, x),
        "det_laplace (bench): grad": ("grad", C.det_laplace, D7),
        "det_laplace (bench): value_and_grad": ("vg", C.det_laplace, D7),
        "walk (bench): grad": ("grad", C.walk_energy, A600),
        "walk (bench): value_and_grad": ("vg", C.walk_energy, A600),
        "walk: hand-written gradient": ("hand", CH.walk_energy_grad, A600),
        "chain (linear caller): value_and_grad": ("vg", lambda v: chain(v, 0), x),
        "path (linear caller): value_and_grad": ("vg", lambda M: path(M, 0), A600),
    }


def probe(calls: int) -> None:
    sys.path.insert(0, HERE)
    import tapeless as tl

    print(tl.__file__, file=sys.stderr)

    out = {}
    fns = {}
    for name, (how, fn, arg) in programs().items():
        f = fn if how == "hand" else tl.grad(fn) if how == "grad" else \
            tl.grad(fn, backend="native") if how == "native" else tl.value_and_grad(fn)
        r = f(arg)
        got = np.concatenate([np.ravel(r[0]), np.ravel(r[1])]) if how == "vg" \
            else np.ravel(r)
        fns[name] = (f, arg)
        out[name] = {"t": float("inf"), "r": got.tolist()}
    for _ in range(calls):
        for name, (f, arg) in fns.items():
            t0 = time.process_time()
            f(arg)
            out[name]["t"] = min(out[name]["t"], time.process_time() - t0)
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trees", nargs="+", default=[os.path.join(os.path.dirname(HERE), "src")])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--probe", action="store_true")
    opts = ap.parse_args()
    if opts.probe:
        probe(opts.calls)
        return
    best: dict[str, dict[str, float]] = {}
    results: dict[str, dict[str, np.ndarray]] = {}
    for _ in range(opts.reps):
        for tree in opts.trees:
            env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), OMP_NUM_THREADS="1",
                       OPENBLAS_NUM_THREADS="1")
            env.pop("TAPELESS_OPTIMIZE", None)
            # (the worktree's .pth puts the working directory's `src` first)
            text = subprocess.run([sys.executable, os.path.abspath(__file__), "--probe",
                                   "--calls", str(opts.calls)], env=env, check=True,
                                  capture_output=True, text=True,
                                  cwd=os.path.dirname(os.path.abspath(tree))).stdout
            for name, v in json.loads(text.splitlines()[-1]).items():
                row = best.setdefault(name, {})
                row[tree] = min(row.get(tree, float("inf")), v["t"])
                results.setdefault(name, {})[tree] = np.array(v["r"])
    print(f"load average {os.getloadavg()[0]:.2f}")
    heads = " | ".join(opts.trees)
    print(f"| program | {heads} | last ÷ first | largest relative difference |")
    print("|---|" + "---:|" * (len(opts.trees) + 2))
    for name, row in best.items():
        ts = [row[t] for t in opts.trees]
        rs = [results[name][t] for t in opts.trees]
        diff = max(float(np.max(np.abs(r - rs[0]) / (np.abs(rs[0]) + 1e-300)))
                   for r in rs) if all(r.shape == rs[0].shape for r in rs) else float("nan")
        cells = " | ".join(f"{1e3 * t:.3f} ms" for t in ts)
        print(f"| {name} | {cells} | {ts[-1] / ts[0]:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
